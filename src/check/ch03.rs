//! Chapter 3: a fresh worker's only socket is its channel, and under round robin listening
//! adds none.

use std::path::Path;
use std::time::Duration;

use super::run::{self, Node, Ran};
use super::{Checked, fail};

/// Enough for a primary and one worker.
const LIMIT: Duration = Duration::from_secs(10);

/// The fd `cluster.fork()` gives the channel: `stdio[3]` is `'ipc'`.
const CHANNEL: u32 = 3;

/// 3.1: under round robin the worker's sockets are the same after `listen()` (the channel
/// and nothing else it made); under SCHED_NONE one more, the socket the primary sent.
pub(super) fn worker_fds(file: &Path) -> Checked {
    let node = run::any_node()?;
    let (rr_before, rr_after, ran) = sockets(&node, file, "rr")?;
    if !rr_before.contains(&CHANNEL) {
        return fail(format!(
            "expected the worker's sockets to include {CHANNEL}, its channel to the primary; {}",
            ran.seen()
        ));
    }
    if rr_after != rr_before {
        return fail(format!(
            "under round robin, expected the same sockets after listen as before (the worker \
             gets no socket of its own); {}",
            ran.seen()
        ));
    }
    let (none_before, none_after, ran) = sockets(&node, file, "none")?;
    let added: Vec<u32> = none_after
        .iter()
        .filter(|fd| !none_before.contains(fd))
        .copied()
        .collect();
    if added.len() != 1 || none_after.len() != none_before.len() + 1 {
        return fail(format!(
            "under SCHED_NONE (NODE_CLUSTER_SCHED_POLICY=none), expected one more socket after \
             listen than before; {}",
            ran.seen()
        ));
    }
    Ok(format!(
        "before listen the worker holds socket {CHANNEL}, its channel (node {}). Round robin \
         adds nothing: the primary owns the listening socket. SCHED_NONE adds fd {}: the \
         primary's bound socket, received over the channel",
        node.version, added[0]
    ))
}

/// Run `file` under `policy`; its `before listen:` and `after listen:` lists.
fn sockets(
    node: &Node,
    file: &Path,
    policy: &str,
) -> Result<(Vec<u32>, Vec<u32>, Ran), super::Verdict> {
    let mut cmd = node.script(file);
    cmd.env("NODE_CLUSTER_SCHED_POLICY", policy);
    let what = format!("NODE_CLUSTER_SCHED_POLICY={policy} {}", node.typed(file));
    let ran = run::run(cmd, &what, LIMIT)?;
    let list = |prefix: &str| -> Option<Vec<u32>> {
        let line = ran.after(prefix).next()?;
        line.split([' ', ','])
            .filter(|w| !w.is_empty())
            .map(|w| w.parse().ok())
            .collect()
    };
    match (list("before listen:"), list("after listen:")) {
        (Some(before), Some(after)) => Ok((before, after, ran)),
        _ => Err(super::Verdict::Fail(format!(
            "expected two lines, `before listen: <fds>` and `after listen: <fds>`, each a list \
             of numbers; {}",
            ran.seen()
        ))),
    }
}
