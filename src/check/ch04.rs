//! Chapter 4: two `listen(0)` calls in a worker are two keys (index 0 and 1), so two ports,
//! and every worker shares both.

use std::path::Path;
use std::time::Duration;

use super::{Checked, fail, run, typed};
use crate::helper::ThisProgram;

/// Enough for the lab to start two Node workers one after another (it waits at most 10 s
/// for each).
const LIMIT: Duration = Duration::from_secs(60);

/// 4.1: under our lab's primary, each Node worker listens twice on port 0: two ports per
/// worker, the same two in every worker.
pub(super) fn two_servers(file: &Path) -> Checked {
    let node = run::any_node()?;
    let node_path = node.path.display().to_string();
    let line = node.line().to_string();
    let args = [
        "lab",
        "--json",
        "--workers",
        "2",
        "--servers-per-worker",
        "2",
        "--node",
        &line,
        "--exec",
        &node_path,
    ];
    let mut cmd = ThisProgram::default()
        .command(args)
        .map_err(|e| super::Verdict::Fail(e.to_string()))?;
    cmd.arg(file);
    let what = format!(
        "lab --workers 2 --servers-per-worker 2 --exec node {}",
        typed(file)
    );
    let ran = run::run(cmd, &what, LIMIT)?;
    let ports = ran
        .lines()
        .last()
        .and_then(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .and_then(|v| ports(&v["summary"]));
    let Some(ports) = ports else {
        return fail(format!(
            "expected each worker to listen twice (the lab waits for two listens per worker); \
             saw {}{}",
            listening(&ran.stdout),
            super::run::shown("", &ran.stderr)
        ));
    };
    let pair = &ports[0];
    if ports.iter().any(|p| p.len() != 2) {
        return fail(format!(
            "expected two ports per worker, saw {ports:?}; {}",
            ran.seen()
        ));
    }
    if pair[0] == pair[1] || ports.iter().any(|p| p != pair) {
        return fail(format!(
            "expected two different ports, the same pair in both workers; saw {ports:?}"
        ));
    }
    Ok(format!(
        "both workers listen on ports {} and {} (node {}): each listen(0) is a key of its own \
         (index 0 and 1), and each key one socket in the primary, shared by every worker",
        pair[0], pair[1], node.version
    ))
}

/// The lab's `worker N is listening (port P)` steps, joined: what the workers did.
fn listening(events: &str) -> String {
    let said: Vec<String> = events
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["text"].as_str().map(str::to_string))
        .filter(|text| text.contains(" is listening (port "))
        .collect();
    match said.is_empty() {
        true => "no worker listening".to_string(),
        false => format!("only: {}", said.join(", ")),
    }
}

/// Each worker's ports, from the lab's summary.
fn ports(summary: &serde_json::Value) -> Option<Vec<Vec<u64>>> {
    let workers = summary["workers"].as_array()?;
    let each = workers.iter().map(|w| {
        let ports = w["ports"].as_array()?;
        ports.iter().map(serde_json::Value::as_u64).collect()
    });
    let all: Option<Vec<Vec<u64>>> = each.collect();
    all.filter(|a| !a.is_empty())
}
