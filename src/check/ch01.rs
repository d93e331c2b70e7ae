//! Chapter 1: listen twice on one port, in one process.

use std::path::Path;
use std::time::Duration;

use super::{Checked, fail, run};

/// Enough for a script that starts two servers and closes one.
const LIMIT: Duration = Duration::from_secs(10);

/// 1.1: the second server's error is `EADDRINUSE`, and Node names the syscall `listen`,
/// though the call the kernel refused was `bind` (libuv kept its error for `listen`).
pub(super) fn listen_twice(file: &Path) -> Checked {
    let node = run::any_node()?;
    let mut cmd = node.script(file);
    cmd.env("PORT", "0");
    let ran = run::run(cmd, &node.typed(file), LIMIT)?;
    let want = "EADDRINUSE listen";
    if !ran.has_line(want) {
        return fail(format!(
            "expected a line `{want}` (the second server's err.code and err.syscall); {}",
            ran.seen()
        ));
    }
    if ran.timed_out {
        return fail(format!(
            "it printed `{want}` but did not end by itself: close the first server once the \
             second one fails; {}",
            ran.seen()
        ));
    }
    Ok(format!(
        "the second server failed with `{want}` (node {}). Node names listen, yet the call the \
         kernel refused was bind(2): libuv kept bind's error for listen (chapter 1)",
        node.version
    ))
}
