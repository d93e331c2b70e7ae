//! Chapter 10: checking our work against Node. Each scenario runs twice under `strace -f`: as a
//! plain Node cluster script (`tests/node/scenario-*.js`) and as our lab; the socket calls of
//! the listening side are counted per role and printed side by side. Run it with
//! `cargo run --bin ch10-against-node` (it needs `node` and `strace`).

use std::process::{Command, ExitCode};
use std::time::Duration;

use cluster_walkthrough::chapter::{self, Chapter, ChapterError, Ctx, HelperRole};
use cluster_walkthrough::node_source::{Want, find_node};
use cluster_walkthrough::strace::{self, CallCounts, Scenario};
use cluster_walkthrough::{lab, trace};

pub static CHAPTER: Chapter = Chapter {
    number: 10,
    slug: "against-node",
    title: "Checking our work against Node",
    intro: "Four scenarios, each run twice under `strace -f`: once as a plain Node cluster script, once\n\
            as our lab. 2 workers on 127.0.0.1, 2 requests made by the primary itself. Each table counts\n\
            the listening side's socket calls per role, Node's next to ours; the clients' sockets get a\n\
            row of their own.",
    outro: "Node and the mirror make the same listening-side calls in the same processes, scenario by scenario.",
    run,
    role: Some(role),
};

/// The longest one traced run may take (a normal one takes well under a second).
const LIMIT: Duration = Duration::from_secs(30);

#[allow(dead_code)]
fn main() -> ExitCode {
    chapter::main(&CHAPTER)
}

// ANCHOR: role
/// The helper `lab <flags>` is `cluster-walkthrough lab <flags>`, so that strace can run our
/// side through this very program (`cargo run --bin ch10-against-node` has no `lab` command
/// of its own).
fn role(role: HelperRole) -> ExitCode {
    match role {
        HelperRole::Lab(args) => lab::main(&args),
        other => chapter::unknown_role(&CHAPTER, &other),
    }
}

/// Our side: this program again in the role `lab <flags>` (`cluster-walkthrough chapter 10
/// lab <flags>` when the chapter runs inside `cluster-walkthrough`).
fn ours(ctx: &Ctx, sc: &Scenario) -> Result<Command, ChapterError> {
    let flags = sc.lab_args_for(ctx.node);
    ctx.role_command(std::iter::once("lab").chain(flags.iter().map(String::as_str)))
}
// ANCHOR_END: role

/// Run under strace; a failed or hung run is an error, with its stderr.
fn traced(cmd: &Command, who: &str) -> Result<CallCounts, ChapterError> {
    let run = strace::run(cmd, LIMIT).map_err(|e| ChapterError::Failed(format!("{who}: {e}")))?;
    if !run.status.success() {
        return Err(ChapterError::Failed(format!(
            "{who} exited with {}: {}",
            run.status,
            run.stderr.trim()
        )));
    }
    Ok(strace::summarize(&run.text))
}

fn run(ctx: &Ctx) -> Result<(), ChapterError> {
    if let Some(why) = strace::missing_tools() {
        trace::raw(&format!(
            "skipped: {why}; this chapter runs real Node under strace (the book shows the tables)"
        ));
        return Ok(());
    }
    // The exclusive workers bind a fixed port; keep it out of the kernel's ephemeral range.
    let port = match (ctx.port, strace::quiet_port()) {
        (0, Some(p)) => p,
        _ => ctx.pick_port()?,
    };
    let node = match find_node(Want::Major(ctx.node)) {
        Ok(node) => node,
        Err(e) => {
            trace::raw(&format!(
                "skipped: {e}; this chapter runs that Node under strace"
            ));
            return Ok(());
        }
    };
    trace::raw(&format!(
        "Node {} under strace, against the mirror following it (--node {})",
        ctx.node, ctx.node
    ));
    trace::raw("");
    let mut differ = 0;
    for sc in strace::scenarios(port) {
        let theirs = traced(&sc.node_command_with(&node.path), "node")?;
        let ours = traced(&ours(ctx, &sc)?, "ours")?;
        trace::raw(sc.title);
        for line in sc.commands(ctx.node).lines() {
            trace::raw(&format!("  {line}"));
        }
        for line in strace::table(&theirs, &ours).lines() {
            trace::raw(line);
        }
        trace::raw("");
        differ += strace::count_differences(&theirs, &ours).len();
    }
    if differ == 0 {
        trace::raw("Every count agrees, in every scenario.");
    } else {
        trace::raw(&format!("{differ} counts differ (marked above)."));
    }
    Ok(())
}
