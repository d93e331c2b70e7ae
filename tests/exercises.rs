//! The exercises people write: for each, `check <id>` says `fail:` for the starter the reader
//! finds in `exercises/` and `pass:` for the solution the book shows
//! (`exercises/solutions/`), and leaves nothing running either way. A check that cannot
//! run here (no `node`, no `strace`, no recent enough Node) says `skipped:` in one line,
//! and so does its test.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use cluster_walkthrough::check::{self, EXERCISES};

const BIN: &str = env!("CARGO_BIN_EXE_cluster-walkthrough");

/// Every exercise this file tests, one `#[test]` each (checked against the list below).
const TESTED: [&str; 11] = [
    "1.1", "2.1", "2.2", "3.1", "4.1", "5.1", "6.1", "7.1", "7.2", "8.1", "9.1",
];

/// `check <id> [--file <file>]`, marked so that what it leaves behind can be found.
fn check(id: &str, file: Option<&Path>) -> common::Run {
    let mut cmd = Command::new(BIN);
    cmd.args(["check", id]);
    if let Some(file) = file {
        cmd.arg("--file").arg(file);
    }
    let mark = format!("exercise-{id}-{}", std::process::id());
    cmd.env(common::MARK, &mark);
    let run = common::run(cmd, Duration::from_secs(180));
    let left = common::marked_processes(&mark);
    assert!(left.is_empty(), "check {id} left these running: {left:?}");
    run
}

/// The starter fails with exit code 1, the solution passes with 0; or both say `skipped:`.
fn starter_fails_and_solution_passes(id: &str) {
    let exercise = check::find(id).expect("a listed exercise");
    let starter = check(id, None);
    if let Some(line) = starter.stdout.lines().find(|l| l.starts_with("skipped:")) {
        assert_eq!(starter.code, Some(3), "{}", starter.stdout);
        eprintln!("{line}");
        return;
    }
    assert!(
        starter.stdout.starts_with("fail: "),
        "the starter of {id} should fail:\n{}{}",
        starter.stdout,
        starter.stderr
    );
    assert_eq!(starter.code, Some(1));
    let solution = check(id, Some(&exercise.solution()));
    assert!(
        solution.stdout.starts_with("pass: "),
        "the solution of {id} should pass:\n{}{}",
        solution.stdout,
        solution.stderr
    );
    assert_eq!(solution.code, Some(0));
}

#[test]
fn ex_1_1_listen_twice() {
    starter_fails_and_solution_passes("1.1");
}

#[test]
fn ex_2_1_exclusive() {
    starter_fails_and_solution_passes("2.1");
}

#[test]
fn ex_2_2_fake_worker() {
    starter_fails_and_solution_passes("2.2");
}

#[test]
fn ex_3_1_worker_fds() {
    starter_fails_and_solution_passes("3.1");
}

#[test]
fn ex_4_1_two_servers() {
    starter_fails_and_solution_passes("4.1");
}

#[test]
fn ex_5_1_rotation() {
    starter_fails_and_solution_passes("5.1");
}

#[test]
fn ex_6_1_sched_none() {
    starter_fails_and_solution_passes("6.1");
}

#[test]
fn ex_7_1_survive() {
    starter_fails_and_solution_passes("7.1");
}

/// The one exercise that is no Node script: flags for our lab, and a prediction.
#[test]
fn ex_7_2_lose_a_worker() {
    starter_fails_and_solution_passes("7.2");
}

#[test]
fn ex_8_1_wire_log() {
    starter_fails_and_solution_passes("8.1");
}

#[test]
fn ex_9_1_reuse_port() {
    starter_fails_and_solution_passes("9.1");
}

#[test]
fn every_exercise_is_tested_here() {
    let listed: Vec<&str> = EXERCISES.iter().map(|e| e.id).collect();
    assert_eq!(listed, TESTED);
}

#[test]
fn the_list_names_every_exercise_and_its_file() {
    let mut cmd = Command::new(BIN);
    cmd.args(["check", "--list"]);
    let run = common::run(cmd, Duration::from_secs(30));
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    for e in EXERCISES {
        let line = run.stdout.lines().find(|l| l.starts_with(e.id));
        let line = line.unwrap_or_else(|| panic!("{} is not listed:\n{}", e.id, run.stdout));
        assert!(line.contains(&format!("exercises/{}", e.file)), "{line}");
    }
}

#[test]
fn an_unknown_exercise_is_an_error_with_code_2() {
    let mut cmd = Command::new(BIN);
    cmd.args(["check", "1.9"]);
    let run = common::run(cmd, Duration::from_secs(30));
    assert_eq!(run.code, Some(2));
    assert_eq!(
        run.stderr.trim(),
        "error: no exercise \"1.9\"; `cluster-walkthrough check --list` shows them"
    );
    assert_eq!(run.stdout, "");
}

#[test]
fn a_missing_file_is_an_error_with_code_2() {
    let mut cmd = Command::new(BIN);
    cmd.args(["check", "1.1", "--file", "no/such/file.js"]);
    let run = common::run(cmd, Duration::from_secs(30));
    assert_eq!(run.code, Some(2));
    assert_eq!(run.stderr.trim(), "error: no/such/file.js is not a file");
}
