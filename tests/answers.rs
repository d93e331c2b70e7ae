//! The lab's client shows who answered whatever the body says: `worker N` (ours), a pid it
//! knows (`{"pid":1234}` from a Node app: the worker with that pid), or else the answer's
//! first line (`Hello, World!`).

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_cluster-walkthrough");

fn lab(answer: &str) -> (Value, common::Run) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/node/plain-worker.js");
    let mut cmd = Command::new(BIN);
    cmd.args([
        "lab",
        "--json",
        "--workers",
        "2",
        "--connections",
        "4",
        "--node",
        "20",
    ])
    .arg("--exec")
    .arg("node")
    .arg(script)
    .env("ANSWER", answer);
    let run = common::run(cmd, Duration::from_secs(60));
    let last = run.stdout.lines().last().unwrap_or("{}");
    let v: Value = serde_json::from_str(last).unwrap_or(Value::Null);
    (v["summary"].clone(), run)
}

#[test]
fn a_node_app_that_answers_its_pid_shows_as_its_worker() {
    if !common::have("node", "needed to run a Node app") {
        return;
    }
    let (s, run) = lab("pid");
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(s["answered_by"], json!([1, 2, 1, 2]), "{s}");
    assert_eq!(s["counts"], json!({"1": 2, "2": 2}));
}

#[test]
fn a_node_app_that_answers_anything_else_shows_its_first_line() {
    if !common::have("node", "needed to run a Node app") {
        return;
    }
    let (s, run) = lab("hello");
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let hello = json!("Hello, World!");
    assert_eq!(s["answered_by"], json!([hello, hello, hello, hello]), "{s}");
    let mut cmd = Command::new(BIN);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/node/plain-worker.js");
    cmd.args([
        "lab",
        "--workers",
        "1",
        "--connections",
        "1",
        "--no-syscalls",
        "--exec",
        "node",
    ])
    .arg(script);
    let run = common::run(cmd, Duration::from_secs(60));
    assert!(
        run.stdout
            .contains(r#"connection 1 answered by "Hello, World!""#),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains(r#"answered by: "Hello, World!""#),
        "{}",
        run.stdout
    );
}
