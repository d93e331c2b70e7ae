//! Chapter 8: the complete picture. A sequence diagram of a round-robin cluster, drawn from
//! the messages its primary really saw, and a table of every branch, built from one real run
//! per branch. Run it with `cargo run --bin ch08-complete-picture`.
//!
//! Each branch runs in a helper process (this program again, in the role `lab-events <flags>`),
//! whose JSON events — the primary's and its workers' — are read back here. The branch
//! without cluster runs in this process, with its events captured.

use std::net::TcpListener;
use std::process::ExitCode;
use std::time::Duration;

use serde_json::Value;

use cluster_walkthrough::channel::WireRecord;
use cluster_walkthrough::chapter::{self, Chapter, ChapterError, Ctx, HelperRole};
use cluster_walkthrough::lab::{self, LabArgs, PolicyArg};
use cluster_walkthrough::loopback::LOOPBACK;
use cluster_walkthrough::net::{self, ListenOptions, ListenStep, Server};
use cluster_walkthrough::picture::{self, BranchRow};
use cluster_walkthrough::trace;

pub static CHAPTER: Chapter = Chapter {
    number: 8,
    slug: "complete-picture",
    title: "The complete picture",
    intro: "Two pictures, both drawn by this program from real runs. First, a round-robin cluster with two\n\
            workers and two connections, as a sequence diagram made from every message its primary sent\n\
            or received. Then one run per branch - no cluster, round robin, SCHED_NONE, exclusive, UDP,\n\
            port 0, a taken port, a killed worker - and a table of who made which syscall and what\n\
            crossed the channel.",
    outro: "Only bind(2) returns EADDRINUSE, so only a process that binds gets it from the kernel: the primary (for each worker that asks) or an exclusive worker. The workers that report it never bound: the primary sent them its errno.",
    run,
    role: Some(role),
};

#[allow(dead_code)]
fn main() -> ExitCode {
    chapter::main(&CHAPTER)
}

fn run(ctx: &Ctx) -> Result<(), ChapterError> {
    trace::heading("8a. A round-robin cluster, drawn from its own messages");
    let records = record_round_robin(ctx)?;
    trace::raw(&picture::sequence_diagram(&records));
    trace::heading("8b. Every branch, from one run each");
    let rows = every_branch(ctx)?;
    // The short table is what the book shows before its fold (see `trace::keys`).
    for line in picture::render_summary(&rows).lines() {
        trace::raw(&trace::mark_line(line));
    }
    trace::raw("");
    trace::raw(&picture::render_table(&rows));
    trace::raw("");
    for line in legend() {
        trace::raw(&line);
    }
    Ok(())
}

// ANCHOR: record_round_robin
/// Two workers, two connections, round robin; the primary keeps every message it sends or
/// receives. Nothing is printed meanwhile, here or in the workers (they inherit the setting).
fn record_round_robin(ctx: &Ctx) -> Result<Vec<WireRecord>, ChapterError> {
    let args = LabArgs {
        workers: 2,
        policy: Some(PolicyArg::Rr),
        port: ctx.pick_port()?,
        connections: 2,
        record_wire: true,
        ..LabArgs::default()
    };
    let quiet = trace::Scoped::format(trace::Format::Off, false, false);
    let outcome = lab::run(&args);
    drop(quiet);
    let outcome = outcome.map_err(|e| ChapterError::Failed(e.to_string()))?;
    if outcome.answered_by() != [Some(1), Some(2)] {
        return Err(ChapterError::Failed(format!(
            "the round-robin run went wrong: answered by {:?}",
            outcome.answered_by()
        )));
    }
    Ok(outcome.wire().to_vec())
}
// ANCHOR_END: record_round_robin

/// The lab runs behind the table: a branch, and the flags after `--workers 2`. `{FREE}` is a
/// free port; `{HELD}` a port that "another program" (this one) holds during the run.
const LAB_RUNS: [(&str, &[&str]); 8] = [
    ("round robin", &["--policy", "rr", "--connections", "2"]),
    ("SCHED_NONE", &["--policy", "none", "--connections", "2"]),
    (
        "exclusive",
        &["--exclusive", "--port", "{FREE}", "--connections", "2"],
    ),
    ("UDP", &["--udp", "--connections", "2"]),
    (
        "port 0, 2 each",
        &[
            "--policy",
            "rr",
            "--servers-per-worker",
            "2",
            "--connections",
            "2",
        ],
    ),
    (
        "bind fails (rr)",
        &["--policy", "rr", "--port", "{HELD}", "--handle-errors"],
    ),
    (
        "bind fails (none)",
        &["--policy", "none", "--port", "{HELD}", "--handle-errors"],
    ),
    (
        "worker killed",
        &[
            "--policy",
            "rr",
            "--connections",
            "3",
            "--kill-worker",
            "2",
            "--after",
            "1",
        ],
    ),
];

/// A run's flags with its port in place of `{FREE}` and `{HELD}`.
fn with_port(flags: &[&str], port: &str) -> Vec<String> {
    let port_of = |f: &&str| match *f {
        "{FREE}" | "{HELD}" => port.to_string(),
        f => f.to_string(),
    };
    flags.iter().map(port_of).collect()
}

/// Under the table: how each row was made, and how to read the counts.
fn legend() -> Vec<String> {
    let mut lines = vec![
        "Each row is one run; its events (--json --trace-wire) are counted. The runs:".to_string(),
        format!(
            "  {:<19}two servers on one port in one process (chapter 1)",
            "no cluster"
        ),
    ];
    for (branch, flags) in LAB_RUNS {
        let flags = with_port(flags, "P").join(" ");
        lines.push(format!("  {branch:<19}lab --workers 2 {flags}"));
    }
    lines.extend(
        [
            "  (`lab` is `cargo run -- lab`; for bind fails, another program holds 127.0.0.1:P)",
            "Counts add up all the processes of one side. `skipped`: a listen(2) that libuv never makes",
            "because bind kept an error. accept4 counts connections taken (the trace leaves out EAGAIN).",
            "Our own user messages ({\"lab\": ...}) are left out of the channel column.",
        ]
        .map(String::from),
    );
    lines
}

// ANCHOR: every_branch
/// One run per branch, each turned into a row of the table.
fn every_branch(ctx: &Ctx) -> Result<Vec<BranchRow>, ChapterError> {
    let mut rows = vec![picture::branch_row(
        "no cluster",
        &no_cluster(ctx.pick_port()?),
    )];
    for (branch, flags) in LAB_RUNS {
        let port = ctx.pick_port()?;
        // "Another program" holds the port: we do, before the helper starts.
        let holder = match flags.contains(&"{HELD}") {
            true => Some(
                TcpListener::bind((LOOPBACK, port))
                    .map_err(|e| ChapterError::io("hold the port", e))?,
            ),
            false => None,
        };
        let events = lab_events(ctx, &with_port(flags, &port.to_string()))?;
        drop(holder);
        rows.push(picture::branch_row(branch, &events));
    }
    Ok(rows)
}

/// Run the lab with these flags (and two workers) in a helper process; its JSON events.
fn lab_events(ctx: &Ctx, flags: &[String]) -> Result<Vec<Value>, ChapterError> {
    let mut role = vec!["lab-events", "--workers", "2"];
    role.extend(flags.iter().map(String::as_str));
    role.extend(["--json", "--trace-wire"]);
    let out = ctx.capture_role(&role, Duration::from_secs(30))?;
    let events: Vec<Value> = out
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    if !events.iter().any(|e| e.get("summary").is_some()) {
        return Err(ChapterError::Failed(format!(
            "the run `lab {}` ended without its summary",
            flags.join(" ")
        )));
    }
    Ok(events)
}
// ANCHOR_END: every_branch

/// No cluster: two servers on one port in this process, as in chapter 1. The events are
/// kept instead of printed.
fn no_cluster(port: u16) -> Vec<Value> {
    trace::set_label("process");
    let (_servers, events) = trace::capture(|| {
        let mut servers = Vec::new();
        for i in 1..=2 {
            let mut server = Server::new(&format!("server {i}"));
            let opts = ListenOptions::new(LOOPBACK, port);
            net::trace_listen_call(&server, &opts);
            match server.listen(&opts) {
                ListenStep::Listening(addr) => trace::ok(&format!("listening on {addr}")),
                ListenStep::Failed(err) => err.trace(),
                ListenStep::AskPrimary(_) => {}
            }
            servers.push(server);
        }
        servers
    });
    trace::set_label("primary");
    events
}

// ANCHOR: role
/// The one helper role of this chapter.
fn role(role: HelperRole) -> ExitCode {
    match role {
        HelperRole::LabEvents(args) => lab::events_main(&args),
        other => chapter::unknown_role(&CHAPTER, &other),
    }
}
// ANCHOR_END: role
