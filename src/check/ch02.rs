//! Chapter 2: `exclusive: true` takes chapter 1's road; `NODE_UNIQUE_ID` alone makes a worker.

use std::path::Path;
use std::time::Duration;

use super::{Checked, fail, run};

/// Enough for a primary, two workers and a one-second timer.
const LIMIT: Duration = Duration::from_secs(15);

/// 2.1: of two exclusive workers on one port, one listens and one gets chapter 1's error,
/// `EADDRINUSE listen`: each bound a socket of its own.
pub(super) fn exclusive(file: &Path) -> Checked {
    let node = run::any_node()?;
    let port = run::free_port()?;
    let mut cmd = node.script(file);
    cmd.env("PORT", port.to_string());
    let ran = run::run(cmd, &node.typed(file), LIMIT)?;
    // `worker <id>: <what it said>`
    let said: Vec<(&str, &str)> = ran
        .after("worker ")
        .filter_map(|l| l.split_once(": "))
        .collect();
    let listening: Vec<&str> = said
        .iter()
        .filter(|(_, s)| *s == "listening")
        .map(|(id, _)| *id)
        .collect();
    let failed: Vec<&str> = said
        .iter()
        .filter(|(_, s)| *s == "EADDRINUSE listen")
        .map(|(id, _)| *id)
        .collect();
    if listening.len() == 2 {
        return fail(format!(
            "both workers listened: with `exclusive: true` the second one cannot (is it still \
             there?); {}",
            ran.seen()
        ));
    }
    if listening.len() != 1 || failed.len() != 1 || listening == failed {
        return fail(format!(
            "expected one `worker <id>: listening` and one `worker <id>: EADDRINUSE listen` \
             (on port {port}); {}",
            ran.seen()
        ));
    }
    Ok(format!(
        "worker {} listens, worker {} got `EADDRINUSE listen` (node {}): with exclusive each \
         worker binds for itself, so the loser gets chapter 1's error, not the cluster's",
        listening[0], failed[0], node.version
    ))
}

/// 2.2: a child started with `child_process.fork()` and `NODE_UNIQUE_ID=1` thinks it is
/// worker 1, and its `listen()` waits for a primary that never answers.
pub(super) fn fake_worker(file: &Path) -> Checked {
    let node = run::any_node()?;
    let ran = run::run(node.script(file), &node.typed(file), LIMIT)?;
    let worker = "child: isPrimary=false id=1";
    if !ran.has_line(worker) {
        return fail(format!(
            "expected the child to say `isPrimary=false id=1`; {}",
            ran.seen()
        ));
    }
    if !ran.has_line("child: listening after 1 s: false") {
        return fail(format!(
            "expected the child's server not to listen (`listening after 1 s: false`); {}",
            ran.seen()
        ));
    }
    Ok(format!(
        "the child believes it is worker 1, and its listen() never completes (node {}): it \
         asked a primary that is not there, and nobody answers",
        node.version
    ))
}
