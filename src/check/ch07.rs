//! Chapter 7: a port another program holds. The primary's bind fails, each worker gets
//! `EADDRINUSE` with syscall `bind`, and with an 'error' listener it stays up.

use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;

use super::{Checked, Verdict, fail, run};
use crate::loopback::LOOPBACK;

/// Enough for a primary and two workers.
const LIMIT: Duration = Duration::from_secs(15);

/// 7.1: with the port held, both workers report `EADDRINUSE bind` and are still up.
pub(super) fn survive(file: &Path) -> Checked {
    let node = run::any_node()?;
    // The other program: us, listening on a port the kernel picks, until the run is over.
    let held = TcpListener::bind((LOOPBACK, 0))
        .and_then(|l| Ok((l.local_addr()?.port(), l)))
        .map_err(|e| Verdict::Fail(format!("cannot hold a port on 127.0.0.1: {e}")))?;
    let (port, _held) = held;
    let mut cmd = node.script(file);
    cmd.env("PORT", port.to_string());
    let ran = run::run(cmd, &format!("PORT={port} {}", node.typed(file)), LIMIT)?;
    for id in 1..=2 {
        let error = format!("worker {id}: EADDRINUSE bind");
        if !ran.has_line(&error) {
            return fail(format!(
                "expected `{error}`: each worker tells the primary its error's code and \
                 syscall (port {port} is held by another program); {}",
                ran.seen()
            ));
        }
        if !ran.has_line(&format!("worker {id}: still up")) {
            return fail(format!(
                "expected `worker {id}: still up`: a worker with a listener for 'error' does \
                 not crash; {}",
                ran.seen()
            ));
        }
    }
    Ok(format!(
        "both workers got `EADDRINUSE bind` and stayed up (node {}). The call that failed was \
         the primary's bind(2); the worker only got its errno, in the cluster's wording",
        node.version
    ))
}
