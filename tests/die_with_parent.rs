//! A helper never outlives the program that started it, even when that program is killed with
//! `SIGKILL` and runs no destructor: every helper asks the kernel for a parent-death signal
//! (`cluster_walkthrough::helper`), and so does the program strace traces. Each test kills a
//! program in the middle of a chapter that starts helpers, and looks for anything left behind
//! (every process it started carries a mark in its environment).

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use cluster_walkthrough::helper::{self, Capture};
use cluster_walkthrough::strace;
use common::{MARK, Marked};

const BIN: &str = env!("CARGO_BIN_EXE_cluster-walkthrough");

/// What a killed program left: processes alive 2 s after the kill, and processes that only
/// the program itself starts but that were started after it was killed (it lived on).
#[derive(Debug, Default, PartialEq)]
struct Aftermath {
    left: Vec<String>,
    started_after: Vec<String>,
}

/// Start `cluster-walkthrough args`, wait (at most 60 s) until `ready` sees the processes to
/// test running, `SIGKILL` the program, and watch for 2 s.
fn kill_when(
    args: &[&str],
    mark: &str,
    ready: impl Fn(&[Marked]) -> bool,
    only_it_starts: impl Fn(&Marked) -> bool,
) -> Aftermath {
    let mut cmd = Command::new(BIN);
    cmd.args(args).env(MARK, mark).env("NO_COLOR", "1");
    let mut program = helper::spawn(&mut cmd, Capture::Both).expect("the program starts");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ready(&common::marked_once(mark)) {
        if let Ok(Some(status)) = program.wait(Duration::ZERO) {
            panic!("it ended ({status}) before the helpers under test ran");
        }
        assert!(
            Instant::now() < deadline,
            "the helpers under test never ran"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    program.kill();
    let killed_at = ticks_since_boot();
    let mut before: Vec<u32> = common::marked_once(mark).iter().map(|p| p.pid).collect();
    let mut after = Aftermath::default();
    let watch = Instant::now();
    while watch.elapsed() < Duration::from_secs(2) {
        let now = common::marked_once(mark);
        let new: Vec<&Marked> = now
            .iter()
            .filter(|p| !before.contains(&p.pid) && only_it_starts(p))
            // Forked before the kill and seen only now (its exec had not shown its command
            // line yet): not started after. It dies with its parent like the others.
            .filter(|p| start_ticks(p.pid).is_some_and(|t| t > killed_at + 2))
            .collect();
        for p in new {
            before.push(p.pid); // one line per process
            after.started_after.push(p.cmdline.clone());
        }
        after.left = now.into_iter().map(|p| p.cmdline).collect();
        if after.left.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    after
}

/// Clock ticks since boot (`/proc/uptime`, at the kernel's 100 ticks a second of `stat(5)`).
fn ticks_since_boot() -> u64 {
    let uptime = std::fs::read_to_string("/proc/uptime").expect("/proc/uptime");
    let secs: f64 = uptime
        .split_whitespace()
        .next()
        .and_then(|s| s.parse().ok())
        .expect("seconds since boot");
    (secs * 100.0) as u64
}

/// When process `pid` started, in clock ticks since boot (field 22 of `/proc/PID/stat`).
fn start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 2..];
    // Field 22 of stat(5); after the name, fields start at 3.
    after_name.split_whitespace().nth(19)?.parse().ok()
}

#[test]
fn killing_the_tour_in_chapter_10_leaves_no_strace_node_or_lab() {
    if let Some(why) = strace::missing_tools() {
        eprintln!("skipped: {why} (chapter 10 runs node and our lab under strace)");
        return;
    }
    let mark = format!("tour-{}", std::process::id());
    // The first scenario's Node primary under strace: strace, the traced program and its
    // workers all run, and the chapter has more runs to start.
    let node_traced = |procs: &[Marked]| {
        let strace = procs.iter().any(|p| p.cmdline.starts_with("strace "));
        let node = procs.iter().any(|p| {
            let wrapper = p.cmdline.starts_with("strace") || p.cmdline.starts_with("setpriv");
            p.cmdline.contains("node") && p.cmdline.contains("scenario-rr") && !wrapper
        });
        strace && node
    };
    let strace = |p: &Marked| p.cmdline.starts_with("strace ");
    let after = kill_when(&[], &mark, node_traced, strace);
    assert_eq!(after, Aftermath::default());
}

#[test]
fn killing_chapter_11_leaves_no_benchmark_server() {
    let mark = format!("ch11-{}", std::process::id());
    // The chapter and at least one helper copy of it (a server) run.
    let copy = |p: &Marked| p.cmdline.contains("chapter 11");
    let serving = |procs: &[Marked]| procs.iter().filter(|p| copy(p)).count() >= 2;
    let after = kill_when(&["chapter", "11"], &mark, serving, copy);
    assert_eq!(after, Aftermath::default());
}
