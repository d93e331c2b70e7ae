//! What changed in Node's cluster code after v20, pinned twice: against the real Node
//! binaries (Debian's v20 on PATH; 22/24/26 from `scripts/install-node-versions`), and
//! against the mirror following each line (`--node`). Each case says what a reader sees.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_cluster-walkthrough");

/// Real Node: one worker listens twice on one fixed port. Returns what it printed.
fn real_node(node: &str, policy: &str) -> String {
    let port = common::free_port();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/node/listen-twice-worker.js");
    let mut cmd = Command::new(node);
    cmd.arg(script)
        .env("PORT", port.to_string())
        .env("NODE_CLUSTER_SCHED_POLICY", policy);
    let run = common::run(cmd, Duration::from_secs(30));
    format!("{}{}", run.stdout, run.stderr)
}

/// The mirror: `lab` with one worker and two servers on one fixed port.
fn mirror(major: u32, policy: &str) -> common::Run {
    let port = common::free_port().to_string();
    let mut cmd = Command::new(BIN);
    cmd.args([
        "lab",
        "--workers",
        "1",
        "--servers-per-worker",
        "2",
        "--no-syscalls",
    ])
    .args([
        "--port",
        &port,
        "--policy",
        policy,
        "--node",
        &major.to_string(),
    ]);
    common::run(cmd, Duration::from_secs(30))
}

#[test]
fn listening_twice_in_one_worker_real_node() {
    for major in [20, 22, 24, 26] {
        let Some(node) = common::node(major) else {
            continue;
        };
        let node = node.display().to_string();
        let rr = real_node(&node, "rr");
        assert!(
            rr.contains("second listen: EADDRINUSE bind"),
            "node {major} rr: {rr}"
        );
        let none = real_node(&node, "none");
        if major == 20 {
            assert!(
                none.contains("second listen: EADDRINUSE bind"),
                "node 20 none: {none}"
            );
        } else {
            // nodejs/node#64869: the primary builds a fresh handle, the child asserts.
            assert!(
                none.contains("ERR_INTERNAL_ASSERTION"),
                "node {major} none: {none}"
            );
            assert!(
                none.contains("worker exit code 1"),
                "node {major} none: {none}"
            );
        }
    }
}

#[test]
fn listening_twice_in_one_worker_mirror() {
    for major in [20, 22, 24, 26] {
        for policy in ["rr", "none"] {
            let run = mirror(major, policy);
            let out = format!("{}{}", run.stdout, run.stderr);
            assert!(!out.contains("panicked"), "{out}");
            if major > 20 && policy == "none" {
                assert!(
                    out.contains("ERR_INTERNAL_ASSERTION"),
                    "{major} {policy}: {out}"
                );
            } else {
                assert!(out.contains("bind EADDRINUSE"), "{major} {policy}: {out}");
            }
            assert!(
                out.contains("worker 1 exited (code 1)"),
                "{major} {policy}: {out}"
            );
        }
    }
}

#[test]
fn the_key_has_the_index_in_v20_and_only_for_port_0_later() {
    for (major, key_end) in [(20, ":4:undefined:0\n"), (24, ":4:undefined\n")] {
        let run = mirror(major, "rr");
        let first = run
            .stdout
            .lines()
            .find(|l| l.contains("queryServer from worker 1: key"))
            .unwrap_or_default()
            .to_string();
        assert!(
            format!("{first}\n").ends_with(key_end),
            "node {major}: {first}"
        );
    }
}

#[test]
fn reuse_port_real_node_binds_in_the_worker_from_22() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/node/reuse-port-worker.js");
    for major in [20, 22, 24, 26] {
        let Some(node) = common::node(major) else {
            continue;
        };
        let mut cmd = Command::new(node);
        cmd.arg(&script)
            .env("PORT", common::free_port().to_string());
        let run = common::run(cmd, Duration::from_secs(30));
        let held = major == 20; // Node 20 ignores reusePort: the primary's round robin
        let want = format!("primary holds a listening socket: {held}");
        assert!(run.stdout.contains(&want), "node {major}: {}", run.stdout);
    }
}

#[test]
fn reuse_port_mirror_binds_in_every_worker_from_22() {
    for major in [20, 24] {
        let mut cmd = Command::new(BIN);
        cmd.args([
            "lab",
            "--workers",
            "2",
            "--connections",
            "4",
            "--reuse-port",
        ])
        .args(["--node", &major.to_string()]);
        let run = common::run(cmd, Duration::from_secs(30));
        let reuseport = run.stdout.matches("SO_REUSEPORT").count();
        let queries = run.stdout.matches("queryServer from worker").count();
        match major {
            20 => assert!(reuseport == 0 && queries == 2, "{}", run.stdout),
            _ => assert!(reuseport == 2 && queries == 0, "{}", run.stdout),
        }
        assert_eq!(run.code, Some(0), "{}", run.stderr);
    }
}
