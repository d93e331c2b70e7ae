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
        // 1c's cases are headings, each after a blank line: the part runs to part 1d.
        let rules = &out[out.find("1c. What SO_REUSEADDR").expect("part 1c")..];
        let rules = &rules[..rules.find("\n\n1d. ").expect("part 1d")];
        insta::assert_snapshot!("ch01_reuseaddr_rules", format!("{rules}\n"));
    });
    // The facts, independent of the snapshot's layout.
    let mirror = common::section(out, "1a. One process") + &common::section(out, "1b. Two");
    assert_eq!(
        mirror
            .matches("error: listen EADDRINUSE: address already in use 127.0.0.1:")
            .count(),
        4,
        "three failures in one process, one in the second process"
    );
    assert_eq!(
        mirror
            .matches("(code EADDRINUSE, syscall listen, errno -98)")
            .count(),
        4
    );
    assert_eq!(mirror.matches("ok: listening on").count(), 2);
    assert!(mirror.contains("process B exited with code 1"));
    node_under_strace(&common::section(out, "1d. The same in Node 24"));
}

/// Part 1d: real Node 24 listening twice under strace, its fds and port filtered (its fd
/// numbers depend on what the machine gives Node at startup). Without node 24 or strace,
/// one line says it was skipped and why.
fn node_under_strace(part: &str) {
    let lines: Vec<&str> = part.lines().collect();
    if let [_, skip] = lines[..]
        && skip.starts_with("skipped: ")
    {
        eprintln!("{skip}");
        return;
    }
    let mut settings = common::settings();
    settings.add_filter(r"(socket\(.*\)) = \d+", "$1 = [FD]");
    settings.add_filter(r"(setsockopt|bind|listen)\(\d+", "$1([FD]");
    settings.add_filter(r"PORT=\d+", "PORT=[PORT]");
    settings.bind(|| insta::assert_snapshot!("ch01_node_under_strace", part));
    // The facts: the second bind fails, and only one listen is made.
    assert_eq!(part.matches("bind(").count(), 2, "{part}");
    assert_eq!(part.matches(") = -1 EADDRINUSE").count(), 1, "{part}");
    assert_eq!(part.matches("  listen(").count(), 1, "{part}");
    assert!(part.contains("no listen("), "{part}");
    assert!(
        part.contains("error: listen EADDRINUSE: address already in use 127.0.0.1:"),
        "{part}"
    );
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
