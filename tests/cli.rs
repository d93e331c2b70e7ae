//! The command line: the tour runs to the end, and bad input gets one clear line and a
//! non-zero exit, never a panic or a hang.

mod common;

use std::process::Command;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_cluster-walkthrough");

fn run(args: &[&str]) -> common::Run {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    common::run(cmd, Duration::from_secs(120))
}

fn one_line_error(r: &common::Run, what: &str) {
    assert_ne!(r.code, Some(0), "{what}: must fail");
    assert_ne!(r.code, None, "{what}: must exit, not die of a signal");
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{what}: one line, got {:?}", r.stderr);
    assert!(lines[0].starts_with("error: "), "{what}: {}", lines[0]);
    assert!(!r.stderr.contains("panicked"), "{what}: {}", r.stderr);
    assert!(!r.stderr.contains("backtrace"), "{what}: {}", r.stderr);
}

#[test]
fn the_tour_runs_every_chapter_to_the_end() {
    let r = run(&[]);
    assert_eq!(r.code, Some(0), "stderr: {}", r.stderr);
    for n in 0..=11 {
        assert!(
            r.stdout.contains(&format!("Chapter {n} · ")),
            "chapter {n} missing"
        );
    }
    assert!(r.stdout.contains("End of the tour."));
    assert!(r.stderr.is_empty(), "{}", r.stderr);
    assert!(!r.stdout.contains('\u{1b}'), "no colours when piped");
}

#[test]
fn list_shows_every_chapter_and_its_command() {
    let r = run(&["list"]);
    assert_eq!(r.code, Some(0));
    assert!(r.stdout.contains("cargo run --bin ch05-round-robin"));
    assert_eq!(r.stdout.lines().count(), 13);
}

#[test]
fn a_chapter_by_number_and_by_slug() {
    let a = run(&["chapter", "1"]);
    let b = run(&["chapter", "listen-twice"]);
    assert_eq!(a.code, Some(0));
    assert_eq!(b.code, Some(0));
    assert!(a.stdout.contains("Chapter 1 · "));
    assert!(b.stdout.contains("Chapter 1 · "));
}

#[test]
fn an_unknown_chapter_is_one_line() {
    let r = run(&["chapter", "99"]);
    one_line_error(&r, "chapter 99");
    assert!(r.stderr.contains("no chapter \"99\""));
}

#[test]
fn a_taken_port_for_the_tour_is_one_line() {
    let holder = std::net::TcpListener::bind("127.0.0.1:0").expect("hold a port");
    let port = holder.local_addr().expect("addr").port().to_string();
    let r = run(&["tour", "--port", &port]);
    one_line_error(&r, "tour on a taken port");
    assert!(r.stderr.contains("already in use by another program"));
}

#[test]
fn a_book_directory_that_cannot_be_written_is_one_line() {
    let file = tempfile::NamedTempFile::new().expect("a temp file");
    let out = file.path().join("book");
    let r = run(&["book", "--out", out.to_str().expect("utf-8 path")]);
    one_line_error(&r, "book into a file");
}

#[test]
fn the_book_builds_and_prints_index_html() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let r = run(&["book", "--out", dir.path().to_str().expect("utf-8 path")]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let index = r.stdout.trim();
    assert!(index.ends_with("index.html"));
    assert!(std::path::Path::new(index).exists());
}

#[test]
fn bad_lab_input_is_one_line() {
    for (args, what) in [
        (&["lab", "--workers", "0"][..], "0 is not in 1..=64"),
        (&["lab", "--workers", "10000"][..], "10000 is not in 1..=64"),
        (
            &["lab", "--host", "no-such-host.invalid"][..],
            "does not resolve",
        ),
        (
            &["lab", "--kill-worker", "9", "--after", "1"][..],
            "no such worker",
        ),
        // TEST-NET-1 is never a local address: bind fails, no packet is sent anywhere.
        (
            &["lab", "--host", "192.0.2.1"][..],
            "no worker could listen (bind EADDRNOTAVAIL 192.0.2.1)",
        ),
        (
            &["lab", "--exec", "/nonexistent/worker"][..],
            "cannot start a worker",
        ),
        (
            &["lab", "--exec", "true"][..],
            "worker 1 exited with code 0 before listening",
        ),
    ] {
        let r = run(args);
        one_line_error(&r, &format!("{args:?}"));
        assert!(r.stderr.contains(what), "{args:?}: {}", r.stderr);
    }
}

#[test]
fn helper_roles_are_hidden_subcommands_checked_by_clap() {
    let r = run(&["chapter", "3", "second-process", "--port", "8000"]);
    one_line_error(&r, "another chapter's role");
    assert!(
        r.stderr
            .contains("ch03-fork has no helper role second-process"),
        "{}",
        r.stderr
    );
    let r = run(&["chapter", "1", "second-process", "--port", "0"]);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(r.stderr.contains("0 is not in 1..=65535"), "{}", r.stderr);
    let r = run(&["chapter", "11", "bench-server", "--strategy", "node-rr"]);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
}

/// Exit code 2 and one line that contains `what`: a usage error, caught before anything runs.
fn usage_error(args: &[&str], what: &str) {
    let r = run(args);
    one_line_error(&r, &format!("{args:?}"));
    assert_eq!(r.code, Some(2), "{args:?}: {}", r.stderr);
    assert!(r.stderr.contains(what), "{args:?}: {}", r.stderr);
    assert!(r.stdout.is_empty(), "{args:?} ran: {}", r.stdout);
}

#[test]
fn a_huge_serve_time_is_refused_not_a_panic() {
    usage_error(
        &["lab", "--serve", "18446744073709551615"],
        "18446744073709551615 is not in 0..=86400",
    );
}

#[test]
fn every_number_is_range_checked() {
    usage_error(&["lab", "--connections", "100001"], "is not in 0..=100000");
    usage_error(&["lab", "--servers-per-worker", "9"], "9 is not in 0..=8");
    usage_error(
        &["lab", "--kill-worker", "0", "--after", "1"],
        "0 is not in 1..=64",
    );
    usage_error(&["bench", "--rounds", "0"], "0 is not in 1..=100");
    usage_error(&["bench", "--clients", "257"], "257 is not in 1..=256");
    usage_error(
        &["bench", "--duration", "601"],
        "must be 0.05 to 600 seconds",
    );
    usage_error(&["tour", "--port", "65536"], "65536 is not in 0..=65535");
}

#[test]
fn after_must_come_before_the_last_connection() {
    let args = [
        "lab",
        "--kill-worker",
        "1",
        "--after",
        "5",
        "--connections",
        "3",
    ];
    usage_error(&args, "--after 5 must be less than --connections 3");
    let args = [
        "lab",
        "--kill-worker",
        "1",
        "--after",
        "3",
        "--connections",
        "3",
    ];
    usage_error(&args, "--after 3 must be less than --connections 3");
}

#[test]
fn after_without_kill_worker_is_refused() {
    usage_error(&["lab", "--after", "1"], "--kill-worker");
    usage_error(&["lab", "--kill-worker", "1"], "--after");
}

#[test]
fn exec_workers_must_be_workers() {
    let args = [
        "lab",
        "--workers",
        "2",
        "--exec-workers",
        "3",
        "--exec",
        "true",
    ];
    usage_error(
        &args,
        "--exec-workers 3: there is no such worker (--workers 2)",
    );
    usage_error(&["lab", "--exec-workers", "1"], "--exec");
}

#[test]
fn bench_output_paths_are_checked_before_the_bench_runs() {
    let file = tempfile::NamedTempFile::new().expect("a temp file");
    let under_a_file = file.path().join("chart.svg");
    let under_a_file = under_a_file.to_str().expect("utf-8 path");
    let started = std::time::Instant::now();
    usage_error(&["bench", "--svg", under_a_file], "cannot write");
    usage_error(&["bench", "--table", under_a_file], "cannot write");
    let dir = tempfile::tempdir().expect("a temp dir");
    let a_dir = dir.path().to_str().expect("utf-8 path");
    usage_error(&["bench", "--table", a_dir], "cannot write");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "refused at once, not after a benchmark"
    );
    assert!(dir.path().read_dir().expect("the dir").next().is_none());
}

#[test]
fn lab_help_states_the_limits_a_worker_cannot_pass() {
    let r = run(&["lab", "--help"]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let limits = r
        .stdout
        .split_once("Limits a worker cannot pass")
        .map(|(_, rest)| rest)
        .expect("the limits are in --help");
    for bound in [
        "8 MiB queued",
        "1 MiB per line",
        "4 fds per message",
        "64 servers per worker",
        "512 accepted connections",
        "book/src/appendix-limits.md",
    ] {
        assert!(limits.contains(bound), "{bound:?} missing:{limits}");
    }
    let short = run(&["lab", "-h"]);
    assert!(
        short
            .stdout
            .contains("Limits a worker cannot pass: see --help.")
    );
}
