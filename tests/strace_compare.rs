//! Proof against the real thing, syscall by syscall. Each scenario runs twice under
//! `strace -f`: as a plain Node v20 cluster script (`tests/node/scenario-*.js`) and as our lab
//! (`cluster-walkthrough lab ...`). Per role (the primary; the workers together) the listening
//! side's calls must be the same set, with the same counts; the tables are pinned as snapshots
//! (`strace_<scenario>`), and so is chapter 10's whole output.
//!
//! Each row must also be made of the same syscalls (a datagram is read with `recvmsg(2)` on
//! both sides, for instance), and one detail this comparison found is pinned too: like Node
//! v20 (libuv 1.46.0), our accepting processes make exactly one `accept4` per wake-up and do
//! not drain the queue to `EAGAIN`; only workers that lose a SCHED_NONE race see `EAGAIN`.
//!
//! The runs go through `strace::run`, not `common::run`: on a timeout it kills every traced
//! process, where killing strace alone would only detach it and leave the cluster running.
//! When `node` or `strace` is missing (or ptrace is not allowed) each test prints one
//! `skipped: ...` line and passes.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use cluster_walkthrough::strace::{self, CallCounts, CallKind, Scenario, Side};

const BIN: &str = env!("CARGO_BIN_EXE_cluster-walkthrough");
const LIMIT: Duration = Duration::from_secs(30);
/// The `node` on PATH these tests run: Debian's v20 (the article's Node). The other lines
/// are compared in `every_installed_node_line_matches_the_mirror_following_it`.
const PATH_NODE: u32 = 20;

fn tools() -> bool {
    match strace::missing_tools() {
        Some(why) => {
            eprintln!("skipped: {why} (needed to compare our syscalls with real Node's)");
            false
        }
        None => true,
    }
}

/// Held while an exclusive scenario runs: its workers bind a fixed port, which `quiet_port`
/// picks from this process's pid, so two tests of this file running it at once would pick
/// the same port, and the second one's workers would find it taken (the first one's winner
/// keeps it until the primary kills it, a second after `disconnect`).
fn exclusive_port() -> std::sync::MutexGuard<'static, ()> {
    static PORT: std::sync::Mutex<()> = std::sync::Mutex::new(());
    PORT.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn scenario(slug: &str) -> Scenario {
    // Only the exclusive scenario uses the port; keep it out of the ephemeral range, where a
    // parallel test's client socket could take it between our two runs.
    let port = strace::quiet_port().expect("a free port below the ephemeral range");
    strace::scenarios(port)
        .into_iter()
        .find(|s| s.slug == slug)
        .expect("a known scenario")
}

/// Every process of a finished run is gone (not even a zombie).
fn assert_all_gone(pids: &[u32]) {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let left: Vec<u32> = pids
            .iter()
            .copied()
            .filter(|p| Path::new(&format!("/proc/{p}")).exists())
            .collect();
        if left.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "processes left behind: {left:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn traced(cmd: &Command) -> CallCounts {
    let run = strace::run(cmd, LIMIT).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        run.status.success(),
        "{cmd:?} failed ({}): {}",
        run.status,
        run.stderr
    );
    let s = strace::summarize(&run.text);
    assert!(s.pids.len() >= 3, "a primary and two workers: {:?}", s.pids);
    assert_all_gone(&s.pids);
    s
}

/// The scenario both ways: (Node's, ours).
fn both(sc: &Scenario) -> (CallCounts, CallCounts) {
    let node = traced(&sc.node_command());
    let mut ours = Command::new(BIN);
    ours.arg("lab").args(sc.lab_args_for(PATH_NODE));
    (node, traced(&ours))
}

/// Per role, the same calls happened (the set), and as often (the counts).
fn assert_same(node: &CallCounts, ours: &CallCounts) {
    for side in [Side::Primary, Side::Workers] {
        assert_eq!(
            node.present(side),
            ours.present(side),
            "{}: the calls that happened (node, ours)\n{}",
            side.name(),
            strace::table(node, ours)
        );
    }
    assert_eq!(
        strace::count_differences(node, ours),
        vec![],
        "\n{}",
        strace::table(node, ours)
    );
    assert_eq!(
        strace::flavour_differences(node, ours),
        vec![],
        "the same kinds, made of different syscalls\n{}",
        strace::table(node, ours)
    );
}

fn assert_present(s: &CallCounts, side: Side, kinds: &[CallKind]) {
    let want = kinds.iter().copied().collect();
    assert_eq!(s.present(side), want, "{}", side.name());
}

fn eagain(s: &CallCounts, side: Side) -> u32 {
    s.accept_eagain.get(&side).copied().unwrap_or(0)
}

fn snapshot(name: &str, sc: &Scenario, node: &CallCounts, ours: &CallCounts) {
    let out = format!("{}{}", sc.commands(PATH_NODE), strace::table(node, ours));
    let mut s = common::settings();
    s.add_filter(r"(scenario-exclusive\.js|--port) \d+", "$1 [PORT]");
    s.bind(|| insta::assert_snapshot!(name, out));
}

#[test]
fn round_robin_the_primary_accepts_and_hands_over() {
    if !tools() {
        return;
    }
    let sc = scenario("rr");
    let (node, ours) = both(&sc);
    use CallKind::*;
    let primary = [
        Fork,
        Socket,
        ReuseAddr,
        Bind,
        Listen,
        Accept,
        FdSent,
        ClientSocket,
    ];
    assert_present(&node, Side::Primary, &primary);
    assert_present(&node, Side::Workers, &[FdReceived]);
    assert_eq!(node.count(Side::Primary, Accept), sc.requests);
    assert_eq!(node.count(Side::Primary, FdSent), sc.requests);
    assert_same(&node, &ours);
    // One accept4 per connection on both sides: no drain to EAGAIN.
    assert_eq!(eagain(&node, Side::Primary), 0);
    assert_eq!(eagain(&ours, Side::Primary), 0);
    snapshot("strace_rr", &sc, &node, &ours);
}

#[test]
fn sched_none_the_primary_binds_and_the_workers_listen() {
    if !tools() {
        return;
    }
    let sc = scenario("none");
    let (node, ours) = both(&sc);
    use CallKind::*;
    let primary = [Fork, Socket, ReuseAddr, Bind, FdSent, ClientSocket];
    assert_present(&node, Side::Primary, &primary);
    assert_present(&node, Side::Workers, &[Listen, Accept, FdReceived]);
    assert_eq!(
        node.count(Side::Workers, Listen),
        2,
        "one listen per worker"
    );
    assert_same(&node, &ours);
    // Both workers race for each connection; how many losers see EAGAIN varies, on both sides.
    snapshot("strace_none", &sc, &node, &ours);
}

#[test]
fn exclusive_each_worker_binds_for_itself() {
    if !tools() {
        return;
    }
    let port = exclusive_port();
    let sc = scenario("exclusive");
    let (node, ours) = both(&sc);
    drop(port);
    use CallKind::*;
    assert_present(&node, Side::Primary, &[Fork, ClientSocket]);
    let workers = [Socket, ReuseAddr, Bind, BindFailed, Listen, Accept];
    assert_present(&node, Side::Workers, &workers);
    assert_eq!(node.count(Side::Workers, Bind), 2);
    assert_eq!(node.count(Side::Workers, BindFailed), 1, "one loser");
    assert_eq!(
        node.count(Side::Workers, Listen),
        1,
        "only the winner listens"
    );
    assert_same(&node, &ours);
    // The winner alone accepts: one accept4 per connection, and no EAGAIN, on both sides.
    assert_eq!(eagain(&node, Side::Workers), 0);
    assert_eq!(eagain(&ours, Side::Workers), 0);
    snapshot("strace_exclusive", &sc, &node, &ours);
}

#[test]
fn udp_the_primary_binds_without_reuseaddr_and_the_workers_set_it() {
    if !tools() {
        return;
    }
    let sc = scenario("udp");
    let (node, ours) = both(&sc);
    use CallKind::*;
    assert_present(
        &node,
        Side::Primary,
        &[Fork, Socket, Bind, FdSent, ClientSocket],
    );
    assert_present(&node, Side::Workers, &[ReuseAddr, FdReceived, DatagramIn]);
    assert_eq!(node.count(Side::Workers, DatagramIn), sc.requests);
    assert_eq!(
        node.syscalls(Side::Workers, DatagramIn),
        "recvmsg",
        "libuv's way"
    );
    assert_same(&node, &ours);
    snapshot("strace_udp", &sc, &node, &ours);
}

#[test]
fn chapter_10_prints_the_four_tables() {
    use cluster_walkthrough::node_source::{Want, find_node};
    if !tools() {
        return;
    }
    // The chapter follows Node 24 unless told otherwise.
    if find_node(Want::Major(24)).is_err() {
        eprintln!("skipped: node 24 not installed (scripts/install-node-versions 24.22.3)");
        return;
    }
    let run = common::chapter(env!("CARGO_BIN_EXE_ch10-against-node"), &[]);
    assert_eq!(run.code, Some(0), "stderr: {}", run.stderr);
    assert!(run.stderr.is_empty(), "stderr: {}", run.stderr);
    assert!(
        run.stdout
            .contains("Every count agrees, in every scenario."),
        "{}",
        run.stdout
    );
    let mut s = common::settings();
    s.add_filter(r"(scenario-exclusive\.js|--port) \d+", "$1 [PORT]");
    s.bind(|| insta::assert_snapshot!("ch10_against_node", run.stdout));
}

#[test]
fn a_run_that_hangs_is_killed_with_every_process_it_started() {
    if !tools() {
        return;
    }
    // `--serve 60` keeps the cluster up for a minute: far past the limit.
    let mut cmd = Command::new(BIN);
    cmd.args(["lab", "--workers", "2", "--serve", "60"]);
    let started = Instant::now();
    match strace::run(&cmd, Duration::from_secs(2)) {
        Err(strace::RunError::Timeout { killed, .. }) => {
            assert!(killed.len() >= 3, "a primary and two workers: {killed:?}");
            assert_all_gone(&killed);
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// Every Node line installed, each against the mirror following it (`--node N`): the same
/// calls per role, as for v20 above. Node 24 and 26 ship a newer libuv (1.5x); this is where
/// a change in what it asks of the kernel would show.
#[test]
fn every_installed_node_line_matches_the_mirror_following_it() {
    if !tools() {
        return;
    }
    use cluster_walkthrough::node_source::{Want, find_node};
    for major in [22, 24, 26] {
        let node = match find_node(Want::Major(major)) {
            Ok(n) => n,
            Err(_) => {
                eprintln!("skipped: node {major} not installed (scripts/install-node-versions)");
                continue;
            }
        };
        for slug in ["rr", "none", "exclusive", "udp"] {
            let _port = (slug == "exclusive").then(exclusive_port);
            let sc = scenario(slug);
            let theirs = traced(&sc.node_command_with(&node.path));
            let mut ours = Command::new(BIN);
            ours.arg("lab").args(sc.lab_args_for(major));
            let ours = traced(&ours);
            assert_same(&theirs, &ours);
        }
    }
}
