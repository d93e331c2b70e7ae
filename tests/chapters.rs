//! Chapters 2–7: each program's whole output, pinned. These are the outputs the book shows.
//! Filters: pids, then ports; in chapter 6 also who answered, which is the kernel's choice.

mod common;

fn chapter_output(bin: &str) -> String {
    let run = common::chapter(bin, &[]);
    assert_eq!(run.code, Some(0), "{bin} failed; stderr: {}", run.stderr);
    assert!(
        run.stderr.is_empty(),
        "{bin} wrote to stderr: {}",
        run.stderr
    );
    run.stdout
}

#[test]
fn ch02_exclusive_one_winner() {
    let out = chapter_output(env!("CARGO_BIN_EXE_ch02-listen-in-cluster"));
    assert_eq!(out.matches("ok: server 1 listening on").count(), 1);
    assert_eq!(
        out.matches("error: listen EADDRINUSE: address already in use 127.0.0.1:")
            .count(),
        2
    );
    assert!(
        !out.contains("queryServer"),
        "exclusive listens never ask the primary"
    );
    common::settings().bind(|| insta::assert_snapshot!("ch02_listen_in_cluster", out));
}

#[test]
fn ch03_fork_and_online() {
    let out = chapter_output(env!("CARGO_BIN_EXE_ch03-fork"));
    assert!(out.contains(r#"-> primary {"cmd":"NODE_CLUSTER","act":"online","seq":0}"#));
    common::settings().bind(|| insta::assert_snapshot!("ch03_fork", out));
}

#[test]
fn ch04_query_server_keys_and_index() {
    let out = chapter_output(env!("CARGO_BIN_EXE_ch04-query-server"));
    assert!(out.contains("key 127.0.0.1:0:4:undefined:0"));
    assert!(out.contains("key 127.0.0.1:0:4:undefined:1"));
    common::settings().bind(|| insta::assert_snapshot!("ch04_query_server", out));
}

#[test]
fn ch05_round_robin_strict_rotation() {
    let out = chapter_output(env!("CARGO_BIN_EXE_ch05-round-robin"));
    assert!(out.contains("answered by: 1 2 3 4 1 2 3 4 1 2 3 4"));
    common::settings().bind(|| insta::assert_snapshot!("ch05_round_robin", out));
}

#[test]
fn ch06_shared_handle_and_udp() {
    let out = chapter_output(env!("CARGO_BIN_EXE_ch06-shared-handle"));
    assert_eq!(out.matches("answered by worker").count(), 16);
    let mut s = common::settings();
    // Who wins each accept is the kernel's choice, and so is every line that follows from it.
    s.add_filter(r"answered by worker \d+", "answered by worker [N]");
    s.add_filter(r"answered by: [\d ]+", "answered by: [ORDER]");
    s.add_filter(r"counts: .*", "counts: [SPLIT]");
    s.add_filter(
        r"(?m)^worker \d+ +(server 1: accepted a connection itself|datagram from the client).*\n",
        "[ACCEPT]\n",
    );
    // ...and the syscalls of whichever worker won.
    s.add_filter(
        r"(?m)^worker \d+ +(accept4\(|recvmsg\(\d+\) = ).*\n",
        "[SYSCALL]\n",
    );
    s.bind(|| insta::assert_snapshot!("ch06_shared_handle", out));
}

#[test]
fn ch07_failures() {
    let out = chapter_output(env!("CARGO_BIN_EXE_ch07-failures"));
    assert_eq!(
        out.matches("error: bind EADDRINUSE 127.0.0.1:").count(),
        4,
        "two workers under each policy"
    );
    assert!(out.contains("worker 2 exited (signal SIGKILL)"));
    common::settings().bind(|| insta::assert_snapshot!("ch07_failures", out));
}

#[test]
fn ch00_the_puzzle() {
    let out = chapter_output(env!("CARGO_BIN_EXE_ch00-puzzle"));
    assert_eq!(out.matches("error: listen EADDRINUSE").count(), 3);
    assert!(out.contains("answered by: 1 2 3 4"));
    common::settings().bind(|| insta::assert_snapshot!("ch00_puzzle", out));
}
