//! Chapter 7: a port another program holds. The primary's bind fails, each worker gets
//! `EADDRINUSE` with syscall `bind`, and with an 'error' listener it stays up (7.1). And a
//! worker killed mid-run leaves the idle queue, the others keep their turns (7.2: the
//! reader's flags for our lab, and the reader's prediction).

use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use super::{Checked, Verdict, fail, run};
use crate::helper::ThisProgram;
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

/// The lab's flags that 7.2 may not use, and why: the check runs the lab on 127.0.0.1 in
/// its own `--json`, to its end, with our workers, in an order that can be predicted.
const NOT_HERE: &[(&str, &str)] = &[
    ("--json", "the check adds it"),
    ("--serve", "the run must end by itself"),
    ("--exec", "this exercise is about our own workers"),
    ("--host", "the check keeps the lab on 127.0.0.1"),
    ("--bind-any", "the check keeps the lab on 127.0.0.1"),
    ("--path", "this exercise listens on a TCP port"),
    (
        "--parallel-start",
        "it lets the workers' queries race, and the rotation with them",
    ),
];

/// 7.2: the reader's `lab:` flags kill worker 2 right after the 5th of ten connections to
/// three workers, and the reader's `predict:` is the `answered by` line that run prints.
pub(super) fn lose_a_worker(file: &Path) -> Checked {
    let text = std::fs::read_to_string(file)
        .map_err(|e| Verdict::Fail(format!("cannot read {}: {e}", file.display())))?;
    let (Some(flags), Some(predicted)) = (field(&text, "lab:"), field(&text, "predict:")) else {
        return fail("expected a line `lab: <flags>` and a line `predict: <worker ids>`");
    };
    let predicted: Option<Vec<u64>> = predicted
        .split([' ', ','])
        .filter(|w| !w.is_empty())
        .map(|w| w.parse().ok())
        .collect();
    let Some(predicted) = predicted.filter(|p| !p.is_empty()) else {
        return fail(
            "write after `predict:` the worker ids you expect on the `answered by` line, \
             like `1 2 3 ...`, before you run it",
        );
    };
    let flags: Vec<&str> = flags.split_whitespace().collect();
    for flag in &flags {
        let name = flag.split('=').next().unwrap_or(flag);
        if let Some((_, why)) = NOT_HERE.iter().find(|(f, _)| *f == name) {
            return fail(format!("leave out `{name}`: {why}"));
        }
    }
    let mut cmd = ThisProgram::default()
        .command(
            std::iter::once("lab")
                .chain(flags.iter().copied())
                .chain(["--json"]),
        )
        .map_err(|e| Verdict::Fail(e.to_string()))?;
    cmd.env_remove("NODE_CLUSTER_SCHED_POLICY");
    let what = format!("lab {}", flags.join(" "));
    let ran = run::run(cmd, &what, LAB_LIMIT)?;
    let events: Vec<Value> = ran
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let Some(summary) = events.iter().find_map(|e| e.get("summary")) else {
        return fail(format!(
            "expected the lab to run to its summary; {}",
            ran.seen()
        ));
    };
    let answered: Vec<String> = summary["answered_by"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|w| w.as_u64().map_or("-".into(), |w| w.to_string()))
        })
        .into_iter()
        .flatten()
        .collect();
    let workers = summary["workers"].as_array().map_or(0, Vec::len);
    if summary["policy"] != "rr" || workers != 3 || answered.len() != 10 {
        return fail(format!(
            "expected round robin, 3 workers and 10 connections; the run had policy {}, \
             {workers} workers and {} connections",
            summary["policy"].as_str().unwrap_or("?"),
            answered.len()
        ));
    }
    let killed = killed_after(&events);
    if killed != [(2, 5)] {
        let saw = match killed.first() {
            None => "no worker was killed".to_string(),
            Some((id, n)) => format!("worker {id} was killed after connection {n}"),
        };
        return fail(format!(
            "expected worker 2 to be killed right after the 5th connection; {saw} \
             (`cargo run -q -- lab --help` lists the flags)"
        ));
    }
    let answered = answered.join(" ");
    let predicted: Vec<String> = predicted.iter().map(u64::to_string).collect();
    let predicted = predicted.join(" ");
    if predicted != answered {
        return fail(format!(
            "you predicted `{predicted}`; the run says `answered by: {answered}`. Write down \
             the idle queue after each connection: the worker that answered goes to the back"
        ));
    }
    Ok(format!(
        "answered by: {answered}, as you predicted. After five connections the idle queue was \
         3, 1, 2; removing worker 2 (RoundRobinHandle.prototype.remove) left 3, 1, and the \
         rotation went on with those two"
    ))
}

/// Enough for the lab to start three workers and serve ten connections.
const LAB_LIMIT: Duration = Duration::from_secs(60);

/// The text after `name` on the first line that starts with it (lines starting `#` are
/// comments).
fn field<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(name))
        .map(str::trim)
}

/// Each worker the lab killed, and how many connections had been answered by then, from
/// its `--json` events (`kill worker 2 (pid ...) with SIGKILL`, `connection 5 answered by
/// worker 2`).
fn killed_after(events: &[Value]) -> Vec<(u32, usize)> {
    let mut answered = 0;
    let mut killed = Vec::new();
    for text in events.iter().filter_map(|e| e["text"].as_str()) {
        if text.starts_with("connection ") && text.contains(" answered by ") {
            answered += 1;
        } else if let Some(rest) = text.strip_prefix("kill worker ")
            && let Some(id) = rest.split(' ').next().and_then(|id| id.parse().ok())
        {
            killed.push((id, answered));
        }
    }
    killed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_skip_comments() {
        let text = "# lab: --workers 9\nlab:  --workers 3 \npredict: 1 2\n";
        assert_eq!(field(text, "lab:"), Some("--workers 3"));
        assert_eq!(field(text, "predict:"), Some("1 2"));
        assert_eq!(field(text, "other:"), None);
    }

    #[test]
    fn a_kill_is_counted_after_the_answers_before_it() {
        let events: Vec<Value> = [
            r#"{"text":"connection 1 answered by worker 1"}"#,
            r#"{"text":"kill worker 2 (pid 7) with SIGKILL"}"#,
            r#"{"text":"connection 2 answered by worker 3"}"#,
            r#"{"summary":{}}"#,
        ]
        .iter()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
        assert_eq!(killed_after(&events), [(2, 1)]);
    }
}
