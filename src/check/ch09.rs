//! Chapter 9: SO_REUSEPORT from Node: two plain processes, each with a socket of its own
//! on one port, and the kernel picks which one gets a connection.

use std::path::Path;
use std::time::Duration;

use super::{Checked, fail, run};

/// Enough for two children and twenty connections.
const LIMIT: Duration = Duration::from_secs(15);

/// 9.1: two children, two pids, both `listening on <PORT>`; the answers come from them.
pub(super) fn reuse_port(file: &Path) -> Checked {
    let node = run::node(run::REUSE_PORT)?;
    let port = run::free_port()?;
    let mut cmd = node.script(file);
    cmd.env("PORT", port.to_string());
    let ran = run::run(cmd, &format!("PORT={port} {}", node.typed(file)), LIMIT)?;
    // `child <pid>: listening on <port>`
    let want = format!("listening on {port}");
    let pids: Vec<&str> = ran
        .after("child ")
        .filter_map(|l| l.split_once(": "))
        .filter(|(_, said)| *said == want)
        .map(|(pid, _)| pid)
        .collect();
    if pids.len() != 2 || pids[0] == pids[1] {
        return fail(format!(
            "expected two children to say `{want}` (node {}); {}",
            node.version,
            ran.seen()
        ));
    }
    let Some(answers) = ran.after("answers:").next() else {
        return fail(format!("expected a line `answers: ...`; {}", ran.seen()));
    };
    Ok(format!(
        "children {} and {} both listen on port {port} (node {}), each on a socket of its own; \
         the kernel's hash split the connections: {answers}",
        pids[0], pids[1], node.version
    ))
}
