//! Chapter 6: under SCHED_NONE the primary only binds; every worker calls `listen(2)` on the
//! socket it was sent.

use std::path::Path;
use std::time::Duration;

use super::{Checked, fail, run};
use crate::strace::{self, CallKind, Side};

/// strace slows Node down a lot.
const LIMIT: Duration = Duration::from_secs(60);

/// How many workers the exercise's script has.
const WORKERS: u32 = 2;

/// 6.1: run with no `NODE_CLUSTER_SCHED_POLICY` under strace: the script chose SCHED_NONE
/// itself if the primary binds and never listens, and each worker listens.
pub(super) fn sched_none(file: &Path) -> Checked {
    let node = run::any_node()?;
    run::strace_works()?;
    let mut cmd = node.script(file);
    cmd.env("PORT", "0");
    let what = format!("strace -f {}", node.typed(file));
    let (trace, ran) = run::run_traced(cmd, &what, LIMIT)?;
    if ran.after("answered by:").next().is_none() {
        return fail(format!(
            "expected a line `answered by: ...`; {}",
            ran.seen()
        ));
    }
    let counts = strace::summarize(&trace);
    let primary = |k| counts.count(Side::Primary, k);
    let workers = |k| counts.count(Side::Workers, k);
    if primary(CallKind::Listen) > 0 {
        return fail(format!(
            "the primary called listen(2) {} time(s): that is round robin. Expected SCHED_NONE, \
             where the primary only binds (the check runs the script with no \
             NODE_CLUSTER_SCHED_POLICY: choose it inside the script)",
            primary(CallKind::Listen)
        ));
    }
    if primary(CallKind::Bind) == 0 || workers(CallKind::Listen) != WORKERS {
        return fail(format!(
            "expected one bind(2) in the primary and one listen(2) in each of the {WORKERS} \
             workers; saw {} bind in the primary, {} listen in the workers",
            primary(CallKind::Bind),
            workers(CallKind::Listen)
        ));
    }
    Ok(format!(
        "the primary bound and never listened; the workers made {WORKERS} listen(2) calls on \
         the socket it sent them (node {}). The kernel, not the primary, now picks who accepts",
        node.version
    ))
}
