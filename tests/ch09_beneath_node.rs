//! Chapter 9 — "Beneath Node": the snapshots the book shows, and the facts behind them.
//!
//! Filters: pids, then ports (the shared settings), then the pids that `fork`, `kill` and
//! `waitpid` print bare. In the pre-fork and `SO_REUSEPORT` parts, which child answers is
//! the kernel's choice, and so is every line that follows from it: `child N` becomes
//! `child [N]` there, and the tallies become `[ORDER]` and `[SPLIT]`.

mod common;

const BIN: &str = env!("CARGO_BIN_EXE_ch09-beneath-node");

fn settings() -> insta::Settings {
    let mut s = common::settings();
    s.add_filter(r"fork\(\) = \d+", "fork() = [PID]");
    s.add_filter(
        r"waitpid\(\d+(, WUNTRACED)?\) = \d+",
        "waitpid([PID]$1) = [PID]",
    );
    s.add_filter(r"kill\(\d+, ", "kill([PID], ");
    s.add_filter(r"answered by: [\d ]+", "answered by: [ORDER]");
    s.add_filter(r"counts: .*", "counts: [SPLIT]");
    s.add_filter(
        r"answered by the other children: \d+",
        "answered by the other children: [N]",
    );
    s
}

/// `child 3` → `child [N]` (and `connection 7` → `connection [N]` when asked) in `line`.
fn hide_numbers(line: &str, words: &[&str]) -> String {
    let mut out = line.to_string();
    for word in words {
        let mut result = String::new();
        let mut rest = out.as_str();
        while let Some(at) = rest.find(word) {
            let after = &rest[at + word.len()..];
            let digits = after.chars().take_while(char::is_ascii_digit).count();
            result.push_str(&rest[..at + word.len()]);
            if digits > 0 {
                result.push_str("[N]");
            }
            rest = &after[digits..];
        }
        result.push_str(rest);
        out = result;
    }
    out
}

/// From the first line that contains `from` on, hide which child answered.
fn kernels_choice(section: &str, from: &str) -> String {
    let mut seen = false;
    section
        .lines()
        .map(|line| {
            seen |= line.contains(from);
            let is_child_or_client = line.starts_with("child ") || line.starts_with("client");
            if seen && is_child_or_client {
                hide_numbers(line, &["child "])
            } else {
                line.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// In 9d: connection numbers depend on the hash; so does who answered.
fn dead_child_choices(section: &str) -> String {
    section
        .lines()
        .map(|line| {
            if !line.starts_with("client") {
                return line.to_string();
            }
            let line = hide_numbers(line, &["connection "]);
            if line.contains("answered by child") {
                hide_numbers(&line, &["child "])
            } else {
                line
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// The pids that a section's parent forked (`fork() = PID`).
fn forked_pids(out: &str) -> Vec<u32> {
    out.lines()
        .filter_map(|l| l.split("fork() = ").nth(1))
        .filter_map(|p| p.trim().parse().ok())
        .collect()
}

/// The numbers in `counts: child 1: 3, child 2: 3, child 3: 2`.
fn counts(section: &str) -> Vec<usize> {
    let line = section
        .lines()
        .find_map(|l| l.split("counts: ").nth(1))
        .unwrap_or_else(|| panic!("no counts line in:\n{section}"));
    line.split(", ")
        .map(|c| {
            c.rsplit(": ")
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("bad count {c:?}"))
        })
        .collect()
}

fn migrate_req() -> bool {
    std::fs::read_to_string("/proc/sys/net/ipv4/tcp_migrate_req").is_ok_and(|v| v.trim() == "1")
}

#[test]
fn three_ways_to_share_a_port() {
    let run = common::chapter(BIN, &[]);
    assert_eq!(run.code, Some(0), "stderr: {}", run.stderr);
    assert!(run.stderr.is_empty(), "stderr: {}", run.stderr);
    let out = &run.stdout;
    let a = common::section(out, "9a. Fork per connection");
    let b = common::section(out, "9b. Pre-fork");
    let c = common::section(out, "9c. SO_REUSEPORT: a socket per child");
    let d = common::section(out, "9d. SO_REUSEPORT: a child dies");

    // 9a: a child per connection, each reaped; the parent keeps only its listening socket.
    for n in 1..=3 {
        assert!(
            a.contains(&format!("ok: answered by child {n} (pid ")),
            "{a}"
        );
    }
    assert_eq!(a.matches("(exited with code 0)").count(), 3, "{a}");
    assert!(a.contains("sockets open in the parent: 1; children not reaped: 0"));
    assert!(a.contains(r#"ok: "bye", then end of file"#));

    // 9b: one socket, inherited; only the children accept.
    assert_eq!(b.matches("socket(AF_INET").count(), 1, "{b}");
    assert!(
        !b.lines()
            .any(|l| l.starts_with("parent") && l.contains("accept4"))
    );
    assert_eq!(b.matches("ok: connection").count(), 8);
    assert_eq!(counts(&b).iter().sum::<usize>(), 8);
    assert_eq!(b.matches("(killed by SIGTERM)").count(), 3);

    // 9c: a socket per child, none in the parent.
    assert_eq!(b.matches("SO_REUSEPORT").count(), 0);
    assert_eq!(c.matches("SO_REUSEPORT, [1]) = 0").count(), 3, "{c}");
    assert!(
        !c.lines()
            .any(|l| l.starts_with("parent") && l.contains("socket("))
    );
    assert_eq!(counts(&c).iter().sum::<usize>(), 8);

    // 9d: the stopped child's queue is lost with it; afterwards it gets nothing.
    if migrate_req() {
        assert_eq!(d.matches("answered after all").count(), 2, "{d}");
    } else {
        assert_eq!(d.matches("Connection reset by peer").count(), 2, "{d}");
    }
    let after = counts(&d);
    assert_eq!(after.iter().sum::<usize>(), 6, "{d}");
    assert_eq!(after[1], 0, "child 2 is dead: {d}");
    assert!(d.contains("child 2 answered none: the group has 2 sockets now"));

    settings().bind(|| {
        insta::assert_snapshot!("ch09_fork_per_connection", a);
        insta::assert_snapshot!("ch09_prefork", kernels_choice(&b, "connections to"));
        insta::assert_snapshot!("ch09_reuseport", kernels_choice(&c, "connections to"));
        if !migrate_req() {
            insta::assert_snapshot!("ch09_reuseport_dead_child", dead_child_choices(&d));
        }
    });
}

#[test]
fn no_child_outlives_the_chapter() {
    let run = common::chapter(BIN, &[]);
    assert_eq!(run.code, Some(0), "stderr: {}", run.stderr);
    let pids = forked_pids(&run.stdout);
    assert_eq!(pids.len(), 3 + 3 + 3 + 3, "three children in each part");
    for pid in pids {
        // Reaped children are gone from /proc; a zombie or a live child would still be there.
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        assert!(
            !String::from_utf8_lossy(&cmdline).contains("ch09"),
            "child {pid} is still there"
        );
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        assert!(
            !stat.contains("(ch09-beneath-no"),
            "child {pid} is still there: {stat}"
        );
    }
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
