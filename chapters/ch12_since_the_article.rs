//! Chapter 12: what changed since the article. The article read Node's code as it was up to
//! v20; Node 22, 24 and 26 changed the key, the reuse of a cached handle, and added
//! `reusePort`. Each change is run twice, the mirror following Node 20 and then Node 24
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

// ANCHOR: experiment
/// One experiment, following one Node: the lab runs in a helper (`lab-events`, its events as
/// JSON, every process's), and the lines that `keep` chooses are printed under a heading.
fn experiment(
    ctx: &Ctx,
    heading: &str,
    node: u32,
    flags: &[&str],
    keep: fn(&str) -> bool,
) -> Result<(), ChapterError> {
    let node_flag = node.to_string();
    let mut role = vec!["lab-events", "--json", "--node", &node_flag];
    role.extend(flags);
    let out = ctx.capture_role(&role, Duration::from_secs(30))?;
    trace::raw(&format!("{heading}, following Node {node}:"));
    for e in out
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
    {
        if let (Some(who), Some(text)) = (e["process"].as_str(), e["text"].as_str())
            && keep(text)
        {
            trace::raw(&format!("  {who:<9}  {text}"));
        }
    }
    trace::raw("");
    Ok(())
}
// ANCHOR_END: experiment

fn is_key(t: &str) -> bool {
    t.starts_with("queryServer from")
}

fn is_outcome(t: &str) -> bool {
    [
        "(code EADDRINUSE",
        "ERR_INTERNAL_ASSERTION",
        "fresh handle",
        "exited (",
    ]
    .iter()
    .any(|w| t.contains(w))
}

fn is_reuse(t: &str) -> bool {
    is_key(t) || t.contains("SO_REUSEPORT") || t.contains("listen({")
}

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
    let rr: Vec<&str> = twice.iter().copied().chain(["--policy", "rr"]).collect();
    let none: Vec<&str> = twice.iter().copied().chain(["--policy", "none"]).collect();
    let reuse = [
        "--workers",
        "2",
        "--connections",
        "4",
        "--reuse-port",
        "--port",
        &port,
    ];
    for node in [20, 24] {
        experiment(ctx, "1. The key for a fixed port", node, &rr, is_key)?;
    }
    for node in [20, 24] {
        experiment(
            ctx,
            "2. One worker listens twice, round robin",
            node,
            &rr,
            is_outcome,
        )?;
    }
    for node in [20, 24] {
        experiment(
            ctx,
            "3. One worker listens twice, SCHED_NONE",
            node,
            &none,
            is_outcome,
        )?;
    }
    for node in [20, 24] {
        experiment(
            ctx,
            "4. listen({ reusePort: true })",
            node,
            &reuse,
            is_reuse,
        )?;
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
