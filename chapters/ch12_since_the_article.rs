//! Chapter 12: what changed since the article. The article read Node's code as it was up to
//! v20; Node 22, 24 and 26 changed the key, the reuse of a cached handle, and added
//! `reusePort`. Each experiment runs twice, the mirror following Node 20 and then Node 24
//! (`--node`), and only the lines that differ are printed. Run it with
//! `cargo run --bin ch12-since-the-article`.

use std::process::ExitCode;

use std::time::Duration;

use cluster_walkthrough::chapter::{self, Chapter, ChapterError, Ctx, HelperRole};
use cluster_walkthrough::lab;
use cluster_walkthrough::trace;
use serde_json::Value;

pub static CHAPTER: Chapter = Chapter {
    number: 12,
    slug: "since-the-article",
    title: "What changed since the article",
    intro: "The article read Node 20. Node 22, 24 and 26 build the key without the index for a fixed port,\n\
            give a worker that asks twice a fresh handle, and add listen({ reusePort: true }). Each\n\
            experiment runs the mirror following Node 20, then Node 24; only the lines that matter print.",
    outro: "Listening twice on one port in one worker: EADDRINUSE on Node 20; on 24, EADDRINUSE under round robin, a crash under SCHED_NONE.",
    run,
    role: Some(role),
};

#[allow(dead_code)]
fn main() -> ExitCode {
    chapter::main(&CHAPTER)
}

/// One lab run's events, as the `lab-events` helper printed them (every process's).
struct Events(Vec<Value>);

// ANCHOR: experiment
/// Run the lab in a helper (`lab-events`: its events as JSON lines), the mirror following
/// Node `node`, with the lab's `flags`.
fn lab_run(ctx: &Ctx, node: u32, flags: &[&str]) -> Result<Events, ChapterError> {
    let node = node.to_string();
    let mut role = vec!["lab-events", "--json", "--node", &node];
    role.extend(flags);
    let out = ctx.capture_role(&role, Duration::from_secs(30))?;
    let events = out.lines().filter_map(|l| serde_json::from_str(l).ok());
    Ok(Events(events.collect()))
}

/// Print the lines of `events` that `keep` chooses, under a heading.
fn show(heading: &str, node: u32, events: &[Value], keep: fn(&str) -> bool) {
    trace::raw(&format!("{heading}, following Node {node}:"));
    for e in events {
        if let (Some(who), Some(text)) = (e["process"].as_str(), e["text"].as_str())
            && keep(text)
        {
            trace::raw(&format!("  {who:<9}  {text}"));
        }
    }
}
// ANCHOR_END: experiment

impl Events {
    /// The events from the `n`th `queryServer` the primary received (0: the first) on.
    fn since_query(&self, n: usize) -> &[Value] {
        let at = self
            .0
            .iter()
            .enumerate()
            .filter(|(_, e)| e["text"].as_str().is_some_and(is_key))
            .nth(n)
            .map_or(self.0.len(), |(i, _)| i);
        &self.0[at..]
    }

    /// How many events are the system call `name` made by a process of `role`.
    fn calls(&self, name: &str, role: &str) -> usize {
        let by = |e: &&Value| e["syscall"] == name && e["role"] == role;
        self.0.iter().filter(by).count()
    }

    /// How many `queryServer` messages the primary received.
    fn queries(&self) -> usize {
        let query = |e: &&Value| e["text"].as_str().is_some_and(is_key);
        self.0.iter().filter(query).count()
    }
}

fn is_key(t: &str) -> bool {
    t.starts_with("queryServer from")
}

/// What happened to the second server: the primary's choice of handle, its bind, its
/// reply, and how the worker took it.
fn is_outcome(t: &str) -> bool {
    let bind_failed = t.starts_with("bind(") && t.contains("EADDRINUSE");
    let said = [
        "fresh handle",
        "new RoundRobinHandle",
        "new SharedHandle",
        "reply to worker",
        "getsockname(",
        "(code EADDRINUSE",
        "ERR_INTERNAL_ASSERTION",
        "exited (",
    ];
    bind_failed || said.iter().any(|w| t.contains(w))
}

fn is_reuse(t: &str) -> bool {
    is_key(t) || t.contains("SO_REUSEPORT") || t.contains("listen({")
}

/// The lines the book shows before its fold (see `trace::keys`): the keys in both versions,
/// what is new in Node 24 when one worker asks twice, and who accepts with `reusePort`.
const KEY_LINES: &[&str] = &[
    "primary queryServer from worker 1",
    "primary queryServer from worker 1",
    "primary queryServer from worker 1",
    "primary queryServer from worker 1",
    "primary this worker holds the key's handle already",
    "worker 1 ERR_INTERNAL_ASSERTION",
    "summary 4 connections",
    "summary 4 connections",
];

fn run(ctx: &Ctx) -> Result<(), ChapterError> {
    let port = ctx.pick_port()?.to_string();
    let twice = [
        "--workers",
        "1",
        "--servers-per-worker",
        "2",
        "--port",
        &port,
    ];
    let with =
        |policy| -> Vec<&str> { twice.iter().copied().chain(["--policy", policy]).collect() };
    let reuse = [
        "--workers",
        "2",
        "--connections",
        "4",
        "--reuse-port",
        "--port",
        &port,
    ];
    let rr = [
        lab_run(ctx, 20, &with("rr"))?,
        lab_run(ctx, 24, &with("rr"))?,
    ];
    let none = [
        lab_run(ctx, 20, &with("none"))?,
        lab_run(ctx, 24, &with("none"))?,
    ];
    let _keys = trace::keys(KEY_LINES);
    for (node, run) in [20, 24].into_iter().zip(&rr) {
        show("1. The key of each listen", node, &run.0, is_key);
        trace::raw("");
    }
    let twice = "2. One worker listens twice on one port";
    for (policy, runs) in [("round robin", &rr), ("SCHED_NONE", &none)] {
        for (node, run) in [20, 24].into_iter().zip(runs) {
            // The first listen works the same in both: show what the second one met.
            let second = run.since_query(1).get(1..).unwrap_or_default();
            show(&format!("{twice}, {policy}"), node, second, is_outcome);
            trace::raw("");
        }
    }
    for node in [20, 24] {
        let run = lab_run(ctx, node, &reuse)?;
        show(
            "3. Two workers, listen({ reusePort: true })",
            node,
            &run.0,
            is_reuse,
        );
        trace::raw(&format!(
            "  {:<9}  4 connections: queryServer {}, accept4 in the primary {}, in the workers {}",
            "summary",
            run.queries(),
            run.calls("accept4", "primary"),
            run.calls("accept4", "worker"),
        ));
        trace::raw("");
    }
    Ok(())
}

/// The one helper role of this chapter.
fn role(role: HelperRole) -> ExitCode {
    match role {
        HelperRole::LabEvents(args) => lab::events_main(&args),
        other => chapter::unknown_role(&CHAPTER, &other),
    }
}
