//! Chapter 5: under round robin the primary hands connections out in turn.

use std::path::Path;
use std::time::Duration;

use super::{Checked, fail, run};

/// Enough for a primary, three workers and six requests.
const LIMIT: Duration = Duration::from_secs(15);

/// How many workers and requests the exercise's script has.
const WORKERS: usize = 3;
const REQUESTS: usize = 6;

/// 5.1: `answered by:` six ids that go round: every worker once in the first three, then the
/// same order again.
pub(super) fn rotation(file: &Path) -> Checked {
    let node = run::any_node()?;
    let mut cmd = node.script(file);
    cmd.env("PORT", "0");
    let ran = run::run(cmd, &node.typed(file), LIMIT)?;
    let Some(answers) = ran.after("answered by:").next() else {
        return fail(format!(
            "expected a line `answered by: ...` with {REQUESTS} worker ids; {}",
            ran.seen()
        ));
    };
    let ids: Vec<&str> = answers.split_whitespace().collect();
    let mut first: Vec<&str> = ids.iter().take(WORKERS).copied().collect();
    first.sort_unstable();
    let turns = ids.len() == REQUESTS
        && first == ["1", "2", "3"]
        && (WORKERS..REQUESTS).all(|i| ids[i] == ids[i - WORKERS]);
    if !turns {
        return fail(format!(
            "expected {REQUESTS} answers going round the {WORKERS} workers (like `1 2 3 1 2 3`), \
             saw `answered by: {answers}`"
        ));
    }
    if ran.timed_out {
        return fail(format!(
            "the answers go round, but the script did not end: call cluster.disconnect() at \
             the end; {}",
            ran.seen()
        ));
    }
    Ok(format!(
        "answered by: {answers} (node {}). The primary accepts each connection and hands it \
         to the worker at the front of its idle queue; the order is the order in which the \
         workers' queryServer arrived",
        node.version
    ))
}
