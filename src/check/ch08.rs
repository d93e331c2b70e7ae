//! Chapter 8: the wire log, read by the reader's script and by us, must tell the same story.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use super::{Checked, Verdict, fail, run};
use crate::helper::ThisProgram;

/// Enough for the lab's run and for the script.
const LIMIT: Duration = Duration::from_secs(60);

/// The lab's run: three workers, seven connections, worker 2 killed after the second, so
/// that the answers are not the formula of chapter 8's exercise 1, nor a plain rotation.
const LAB: [&str; 11] = [
    "lab",
    "--json",
    "--trace-wire",
    "--workers",
    "3",
    "--connections",
    "7",
    "--kill-worker",
    "2",
    "--after",
    "2",
];

/// 8.1: the script's `messages:` and `newconn to:` lines match what we read in the same log.
pub(super) fn wire_log(file: &Path) -> Checked {
    let node = run::any_node()?;
    let mut lab = ThisProgram::default()
        .command(LAB)
        .map_err(|e| Verdict::Fail(e.to_string()))?;
    lab.args(["--node", &node.line().to_string()]);
    let log = run::run(lab, &LAB.join(" "), LIMIT)?;
    if log.code != Some(0) {
        return fail(format!(
            "the lab's own run failed (not your script); {}",
            log.seen()
        ));
    }
    let (messages, newconn_to) = read(&log.stdout);
    let path = std::env::temp_dir().join(format!(
        "cluster-walkthrough-wire-{}.jsonl",
        std::process::id()
    ));
    std::fs::write(&path, &log.stdout)
        .map_err(|e| Verdict::Fail(format!("cannot write {}: {e}", path.display())))?;
    let mut cmd = node.script(file);
    cmd.arg(&path);
    let ran = run::run(cmd, &format!("{} <log>", node.typed(file)), LIMIT);
    let _ = std::fs::remove_file(&path);
    let ran = ran?;
    let want_messages = format!("messages: {messages}");
    let want_newconn = format!("newconn to: {}", newconn_to.join(" "))
        .trim()
        .to_string();
    if !ran.has_line(&want_messages) || !ran.has_line(&want_newconn) {
        return fail(format!(
            "for `{}`, expected `{want_messages}` and `{want_newconn}`; {}",
            LAB.join(" "),
            ran.seen()
        ));
    }
    Ok(format!(
        "{messages} messages, newconn to {} (node {}): the log alone tells which worker got \
         each connection, and that worker 2 got none after its death",
        newconn_to.join(" "),
        node.version
    ))
}

/// What we read in the log: Node's messages (the lab's own left out), and the worker each
/// `newconn` went to.
fn read(log: &str) -> (usize, Vec<String>) {
    let mut messages = 0;
    let mut newconn_to = Vec::new();
    for event in log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
    {
        if event["event"] != "wire" {
            continue;
        }
        let message: Value = event["message"]
            .as_str()
            .and_then(|m| serde_json::from_str(m).ok())
            .unwrap_or(Value::Null);
        if message.get("lab").is_some() {
            continue;
        }
        messages += 1;
        if message["cmd"] == "NODE_HANDLE" && message["msg"]["act"] == "newconn" {
            let direction = event["direction"].as_str().unwrap_or_default();
            let worker = direction.split_whitespace().nth(2).unwrap_or("?");
            newconn_to.push(worker.to_string());
        }
    }
    (messages, newconn_to)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lab_s_own_messages_are_left_out() {
        let log = [
            r#"{"event":"wire","direction":"-> primary","message":"{\"lab\":\"ready\"}"}"#,
            r#"{"event":"wire","direction":"-> primary","message":"{\"cmd\":\"NODE_HANDLE_ACK\"}"}"#,
            r#"{"event":"wire","direction":"-> worker 3 [fd 7]","message":"{\"cmd\":\"NODE_HANDLE\",\"msg\":{\"act\":\"newconn\"}}"}"#,
            r#"{"event":"step","text":"-> worker 1"}"#,
        ];
        assert_eq!(read(&log.join("\n")), (2, vec!["3".to_string()]));
    }
}
