//! Chapter 1 — "EADDRINUSE without clustering": the snapshots the book shows.

mod common;

const BIN: &str = env!("CARGO_BIN_EXE_ch01-listen-twice");

#[test]
fn eaddrinuse_without_cluster() {
    let run = common::chapter(BIN, &[]);
    assert_eq!(run.code, Some(0), "stderr: {}", run.stderr);
    let out = &run.stdout;
    common::settings().bind(|| {
        insta::assert_snapshot!("ch01_same_process", common::section(out, "1a. One process"));
        insta::assert_snapshot!(
            "ch01_two_processes",
            common::section(out, "1b. Two processes")
        );
        // 1c's cases are headings, each after a blank line: the part runs to the outro.
        let rules = &out[out.find("1c. What SO_REUSEADDR").expect("part 1c")..];
        let rules = &rules[..rules.find("\n\n=> ").expect("the outro")];
        insta::assert_snapshot!("ch01_reuseaddr_rules", format!("{rules}\n"));
    });
    // The facts, independent of the snapshot's layout.
    assert_eq!(
        out.matches("error: listen EADDRINUSE: address already in use 127.0.0.1:")
            .count(),
        4,
        "three failures in one process, one in the second process"
    );
    assert_eq!(
        out.matches("(code EADDRINUSE, syscall listen, errno -98)")
            .count(),
        4
    );
    assert_eq!(out.matches("ok: listening on").count(), 2);
    assert!(out.contains("process B exited with code 1"));
}

#[test]
fn a_port_taken_by_another_program_is_one_clear_line() {
    let holder = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a port to hold");
    let port = holder.local_addr().expect("local addr").port().to_string();
    let run = common::chapter(BIN, &["--port", &port]);
    assert_eq!(run.code, Some(1));
    assert_eq!(run.stderr.lines().count(), 1, "stderr: {}", run.stderr);
    assert!(run.stderr.contains("already in use by another program"));
}
