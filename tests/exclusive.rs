//! The exclusive winner serves on after `disconnect`, as Node's does: `disconnect` closes only
//! the servers the cluster manages, and an exclusive one is not among them. The lab still
//! ends: what runs a grace period after `disconnect` is killed. Checked against real Node
//! (`tests/node/exclusive-after-disconnect.js`), 20 and 24.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cluster_walkthrough::helper::{self, Capture};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_cluster-walkthrough");

/// The JSON lines the lab wrote to `path` so far.
fn lines(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn has_text(lines: &[Value], part: &str) -> Option<Value> {
    lines
        .iter()
        .find(|v| v["text"].as_str().is_some_and(|t| t.contains(part)))
        .cloned()
}

/// `lab --json --workers 2 --exclusive --serve 60` on a free port, its JSON lines going to
/// `out`: two workers race for one port by themselves, and one wins.
fn exclusive_lab(out: &Path) -> (helper::Running, String) {
    let port = common::free_port().to_string();
    let mut cmd = Command::new(BIN);
    cmd.args([
        "lab",
        "--json",
        "--workers",
        "2",
        "--exclusive",
        "--serve",
        "60",
    ])
    .args(["--port", &port])
    .stdout(std::fs::File::create(out).expect("lab.json"))
    .stderr(Stdio::null());
    let lab = helper::spawn(&mut cmd, Capture::Nothing).expect("the lab starts");
    (lab, port)
}

#[test]
fn our_exclusive_winner_answers_after_disconnect_and_the_lab_still_ends() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("lab.json");
    let (mut lab, port) = exclusive_lab(&out);
    let wait_for = |part: &str, lab: &mut helper::Running| {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(v) = has_text(&lines(&out), part) {
                return v;
            }
            assert!(Instant::now() < deadline, "never saw {part:?}");
            assert!(
                matches!(lab.wait(Duration::ZERO), Ok(None)),
                "it ended early"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    let serving = wait_for("serving on http://", &mut lab);
    let primary = serving["pid"].as_u64().expect("the primary's pid") as u32;
    cluster_walkthrough::sys::kill(primary, cluster_walkthrough::sys::Signal::SIGTERM);
    wait_for("worker 1 disconnected", &mut lab);
    // The lab gives it a second; the winner answers in it, its channel closed.
    let addr = format!("127.0.0.1:{port}").parse().expect("addr");
    let answer = cluster_walkthrough::http::get(addr, Duration::from_secs(2)).unwrap_or_default();
    assert!(answer.contains("worker 1 "), "{answer:?}");
    let status = lab
        .wait(Duration::from_secs(15))
        .expect("wait")
        .expect("it ends");
    assert!(status.success());
    let all = lines(&out);
    let summary = &all.last().expect("a summary")["summary"];
    assert_eq!(
        summary["workers"][0]["exit"],
        json!({"code": null, "signal": "SIGKILL"})
    );
    assert_eq!(
        summary["workers"][1]["exit"],
        json!({"code": 1, "signal": null})
    );
    assert!(has_text(&all, "server 1 is not the cluster's: it stays open").is_some());
}

/// Not Node: a Node worker serving an exclusive server after `disconnect` outlives a primary
/// killed with `SIGKILL` (it has no channel left to see an end of file on). Ours asks the
/// kernel to end it with the primary, so nothing is left behind.
#[test]
fn our_exclusive_winner_serving_alone_ends_with_a_killed_primary() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("lab.json");
    let (mut lab, _port) = exclusive_lab(&out);
    let deadline = Instant::now() + Duration::from_secs(30);
    let wait_for = |part: &str| loop {
        if let Some(v) = has_text(&lines(&out), part) {
            return v;
        }
        assert!(Instant::now() < deadline, "never saw {part:?}");
        std::thread::sleep(Duration::from_millis(5));
    };
    let serving = wait_for("serving on http://");
    wait_for("worker 1 is listening");
    let winner = lines(&out)
        .iter()
        .find(|v| v["process"] == "worker 1")
        .and_then(|v| v["pid"].as_u64())
        .expect("worker 1's pid") as u32;
    let primary = serving["pid"].as_u64().expect("the primary's pid") as u32;
    cluster_walkthrough::sys::kill(primary, cluster_walkthrough::sys::Signal::SIGTERM);
    wait_for("stays open, and so does this worker");
    // Within the lab's second of grace: the primary dies before it can kill the winner.
    cluster_walkthrough::sys::kill(primary, cluster_walkthrough::sys::Signal::SIGKILL);
    let _ = lab.wait(Duration::from_secs(5));
    let gone = Instant::now() + Duration::from_secs(3);
    while Path::new(&format!("/proc/{winner}")).exists() && Instant::now() < gone {
        std::thread::sleep(Duration::from_millis(10));
    }
    let state = std::fs::read_to_string(format!("/proc/{winner}/stat")).unwrap_or_default();
    let state = state
        .rsplit(')')
        .next()
        .and_then(|r| r.split_whitespace().next());
    let left = !matches!(state, None | Some("Z"));
    if left {
        cluster_walkthrough::sys::kill(winner, cluster_walkthrough::sys::Signal::SIGKILL);
    }
    assert!(!left, "worker 1 ({winner}) was left behind: {state:?}");
}

#[test]
fn nodes_exclusive_winner_answers_after_disconnect_too() {
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/node/exclusive-after-disconnect.js");
    for (node, major) in common::nodes(&[20, 24]) {
        let mut cmd = Command::new(node);
        cmd.arg(&script).arg(common::free_port().to_string());
        let run = common::run(cmd, Duration::from_secs(60));
        assert_eq!(run.code, Some(0), "node {major}: {}", run.stderr);
        let v: Value = serde_json::from_str(run.stdout.trim()).expect("one JSON line");
        let winner = v["after"].as_str().expect("an answer");
        assert!(winner.starts_with("worker "), "node {major}: {v}");
        let id = &winner["worker ".len()..];
        assert_eq!(v["exits"][id]["signal"], "SIGKILL", "node {major}: {v}");
    }
}
